package ipam

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// memStore is an in-memory Store for allocator unit tests.
type memStore struct {
	mu     sync.Mutex
	leases map[string]Lease
	last   map[int]net.IP
}

func newMemStore() *memStore { return &memStore{leases: map[string]Lease{}, last: map[int]net.IP{}} }

func (m *memStore) Lock(context.Context) (func(), error) { m.mu.Lock(); return m.mu.Unlock, nil }
func (m *memStore) Leases() ([]Lease, error) {
	var out []Lease
	for _, l := range m.leases {
		out = append(out, l)
	}
	return out, nil
}
func (m *memStore) Reserve(l Lease) (bool, error) {
	if _, ok := m.leases[l.IP.String()]; ok {
		return false, nil
	}
	m.leases[l.IP.String()] = l
	return true, nil
}
func (m *memStore) Release(ip net.IP) error                { delete(m.leases, ip.String()); return nil }
func (m *memStore) LastReserved(s int) net.IP              { return m.last[s] }
func (m *memStore) SetLastReserved(s int, ip net.IP) error { m.last[s] = ip; return nil }

func mustConfig(t *testing.T, js string) *Config {
	t.Helper()
	c, _, err := ParseConfig([]byte(js))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	return c
}

func TestParseConfigErrors(t *testing.T) {
	cases := []struct{ name, js, want string }{
		{"bad subnet", `{"name":"n","ipam":{"type":"host-local","subnet":"10.0.0.0/33"}}`, "not a CIDR"},
		{"no ranges", `{"name":"n","ipam":{"type":"host-local"}}`, "no address ranges"},
		{"no ipam", `{"name":"n"}`, "missing \"ipam\""},
		{"overlap", `{"name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.0.0.128/25"}]]}}`, "overlaps"},
		{"start outside", `{"name":"n","ipam":{"subnet":"10.0.0.0/24","rangeStart":"10.0.1.5"}}`, "outside subnet"},
		{"start after end", `{"name":"n","ipam":{"subnet":"10.0.0.0/24","rangeStart":"10.0.0.9","rangeEnd":"10.0.0.5"}}`, "after rangeEnd"},
		{"mixed family", `{"name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/24"},{"subnet":"fd00::/64"}]]}}`, "mixes IPv4 and IPv6"},
		{"too small", `{"name":"n","ipam":{"subnet":"10.0.0.0/31"}}`, "too small"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := ParseConfig([]byte(c.js))
			var e *types.Error
			if !errors.As(err, &e) || e.Code != types.ErrInvalidNetworkConfig || !strings.Contains(e.Msg, c.want) {
				t.Fatalf("got %v, want code 7 containing %q", err, c.want)
			}
		})
	}
}

func TestAllocatorLifecycle(t *testing.T) {
	conf := mustConfig(t, `{"name":"n","ipam":{"ranges":[[{"subnet":"10.1.0.0/29"}],[{"subnet":"fd00:1::/125"}]],"routes":[{"dst":"0.0.0.0/0"}]}}`)
	st := newMemStore()
	a := &Allocator{Config: conf, Store: st, BootID: "boot-2"}
	ctx := context.Background()

	res, err := a.Allocate(ctx, "c1", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPs) != 2 || res.IPs[0].Address.String() != "10.1.0.2/29" || res.IPs[0].Gateway.String() != "10.1.0.1" ||
		res.IPs[1].Address.String() != "fd00:1::2/125" || len(res.Routes) != 1 {
		t.Fatalf("unexpected result %+v %+v", res.IPs[0], res.IPs[1])
	}
	again, err := a.Allocate(ctx, "c1", "eth0")
	if err != nil || !again.IPs[0].Address.IP.Equal(res.IPs[0].Address.IP) {
		t.Fatalf("repeated ADD must return the same lease: %v %v", again, err)
	}
	// v4 /29 has .2-.6 (5 addresses); c1 holds one, so 4 more fit.
	for _, id := range []string{"c2", "c3", "c4", "c5"} {
		if _, err := a.Allocate(ctx, id, "eth0"); err != nil {
			t.Fatalf("allocate %s: %v", id, err)
		}
	}
	_, err = a.Allocate(ctx, "c6", "eth0")
	if !errors.Is(err, ErrExhausted) && (err == nil || !strings.Contains(err.Error(), "10.1.0.0/29")) {
		t.Fatalf("want exhaustion error naming the range, got %v", err)
	}
	if len(st.leases) != 10 {
		t.Fatalf("failed ADD must not leave leases: have %d, want 10", len(st.leases))
	}
	if err := a.Status(); err == nil {
		t.Fatal("STATUS must fail on an exhausted pool")
	}
	u, _ := a.Usage()
	if u[0].Used != 5 || u[0].Size != 5 {
		t.Fatalf("usage %+v", u[0])
	}
	if err := a.Release(ctx, "c1", "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, "c1", "eth0"); err != nil {
		t.Fatalf("second release must succeed: %v", err)
	}
	if err := a.Check(ctx, "c1", "eth0"); err == nil {
		t.Fatal("CHECK of a released container must fail")
	}
	freed, err := a.GC(ctx, AttachmentSet{{"c2", "eth0"}: true})
	if err != nil || len(freed) != 6 {
		t.Fatalf("GC freed %v, %v; want 6 addresses (c3-c5, both families)", freed, err)
	}
	if err := a.Check(ctx, "c2", "eth0"); err != nil {
		t.Fatalf("GC must keep valid attachments: %v", err)
	}
}

func TestAllocatorReclaimsLeasesFromEarlierBoot(t *testing.T) {
	conf := mustConfig(t, `{"name":"n","ipam":{"subnet":"10.1.0.0/30"}}`)
	st := newMemStore()
	old := &Allocator{Config: conf, Store: st, BootID: "boot-1"}
	if _, err := old.Allocate(context.Background(), "before-reboot", "eth0"); err != nil {
		t.Fatal(err)
	}
	now := &Allocator{Config: conf, Store: st, BootID: "boot-2"}
	if u, _ := now.Usage(); u[0].Stale != 1 {
		t.Fatalf("usage must count the stale lease: %+v", u)
	}
	res, err := now.Allocate(context.Background(), "after-reboot", "eth0")
	if err != nil {
		t.Fatalf("the only address belongs to an earlier boot and must be reusable: %v", err)
	}
	if res.IPs[0].Address.IP.String() != "10.1.0.2" {
		t.Fatalf("got %v", res.IPs[0].Address)
	}
}

func TestAllocatorRoundRobinAcrossRanges(t *testing.T) {
	conf := mustConfig(t, `{"name":"n","ipam":{"ranges":[[{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.10","rangeEnd":"10.1.0.11"},{"subnet":"10.2.0.0/24","rangeStart":"10.2.0.5","rangeEnd":"10.2.0.5"}]]}}`)
	a := &Allocator{Config: conf, Store: newMemStore()}
	var got []string
	for _, id := range []string{"a", "b", "c"} {
		res, err := a.Allocate(context.Background(), id, "eth0")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, res.IPs[0].Address.IP.String())
	}
	if strings.Join(got, ",") != "10.1.0.10,10.1.0.11,10.2.0.5" {
		t.Fatalf("got %v", got)
	}
	if err := a.Release(context.Background(), "a", "eth0"); err != nil {
		t.Fatal(err)
	}
	res, err := a.Allocate(context.Background(), "d", "eth0")
	if err != nil || res.IPs[0].Address.IP.String() != "10.1.0.10" {
		t.Fatalf("wrap-around allocation got %v %v", res, err)
	}
}

func TestDiskStoreConcurrentReserve(t *testing.T) {
	conf := mustConfig(t, `{"name":"n","ipam":{"subnet":"10.3.0.0/24"}}`)
	conf.DataDir = t.TempDir()
	var wg sync.WaitGroup
	ips := make([]string, 40)
	errs := make([]error, 40)
	for i := range ips {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := Open(conf, "net1") // a separate store (own lock fd) per worker, like separate processes
			if err == nil {
				var res interface{ String() string }
				r, e := a.Allocate(context.Background(), "c"+string(rune('A'+i)), "eth0")
				err = e
				if r != nil {
					res = r.IPs[0].Address.IP
					ips[i] = res.String()
				}
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, ip := range ips {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if seen[ip] {
			t.Fatalf("address %s handed out twice", ip)
		}
		seen[ip] = true
	}
}

func TestDiskStoreReadsUpstreamAndOwnLeases(t *testing.T) {
	st, err := NewDiskStore(t.TempDir(), "net")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(st.Dir(), "10.0.0.7"), []byte("upstream-id\r\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.Reserve(Lease{IP: net.ParseIP("10.0.0.8"), ContainerID: "mine", IfName: "net1", BootID: "b1"}); !ok || err != nil {
		t.Fatalf("reserve: %v %v", ok, err)
	}
	if ok, _ := st.Reserve(Lease{IP: net.ParseIP("10.0.0.8"), ContainerID: "other"}); ok {
		t.Fatal("an address was reserved twice")
	}
	leases, err := st.Leases()
	if err != nil || len(leases) != 2 {
		t.Fatalf("leases %v %v", leases, err)
	}
	got := map[string]Lease{}
	for _, l := range leases {
		got[l.IP.String()] = l
	}
	if l := got["10.0.0.7"]; l.ContainerID != "upstream-id" || l.IfName != "eth0" || l.BootID != "" {
		t.Fatalf("upstream lease %+v", l)
	}
	if l := got["10.0.0.8"]; l.ContainerID != "mine" || l.IfName != "net1" || l.BootID != "b1" {
		t.Fatalf("own lease %+v", l)
	}
	if _, err := NewDiskStore(t.TempDir(), "../escape"); err == nil {
		t.Fatal("a network name with a slash must be rejected")
	}
}
