package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hoist-project/hoist/flannel/internal/etcdtest"
	"github.com/hoist-project/hoist/flannel/subnet"
)

func TestFindOwn(t *testing.T) {
	ip := netip.MustParseAddr
	lease := func(node, pub string) stored {
		return stored{key: "k-" + node, lease: subnet.Lease{Attrs: subnet.Attrs{NodeName: node, PublicIP: ip(pub)}}}
	}
	all := []stored{lease("a", "10.0.0.1"), lease("", "10.0.0.2"), lease("c", "10.0.0.3")}
	for _, tc := range []struct {
		name, node, pub, wantKey, err string
	}{
		{name: "same node", node: "a", pub: "10.0.0.1", wantKey: "k-a"},
		{name: "same node, new IP", node: "a", pub: "10.0.0.9", wantKey: "k-a"},
		{name: "upstream lease without node name: matched by IP", node: "b", pub: "10.0.0.2", wantKey: "k-"},
		{name: "new node", node: "d", pub: "10.0.0.4"},
		{name: "IP of another node", node: "d", pub: "10.0.0.3", err: `public IP 10.0.0.3 is already claimed by node "c"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := findOwn(all, subnet.Attrs{NodeName: tc.node, PublicIP: ip(tc.pub)})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tc.wantKey == "") || (got != nil && got.key != tc.wantKey) {
				t.Fatalf("got %+v, want key %q", got, tc.wantKey)
			}
		})
	}
}

func TestIntegrationEtcdManager(t *testing.T) {
	srv := etcdtest.Start(t, netip.Addr{})
	srv.Put("/coreos.com/network/config", `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}`)
	cli := srv.Client()
	log := slog.New(slog.DiscardHandler)
	m := New(cli, "", time.Hour, log)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	attrs := func(node, pub string) subnet.Attrs {
		return subnet.Attrs{NodeName: node, PublicIP: netip.MustParseAddr(pub), BackendType: "vxlan", BackendData: json.RawMessage(`{"VNI":1,"VtepMAC":"02:00:00:00:00:01"}`)}
	}

	a, err := m.AcquireLease(ctx, attrs("a", "172.31.0.2"), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	// A restart (no subnet.env) and a changed host IP keep the subnet.
	again, err := m.AcquireLease(ctx, attrs("a", "172.31.0.9"), netip.Prefix{})
	if err != nil || again.Subnet != a.Subnet {
		t.Fatalf("re-acquire: %v, %v; had %s", again, err, a.Subnet)
	}
	resp, err := cli.Get(ctx, "/coreos.com/network/subnets/"+subnet.KeyName(a.Subnet))
	if err != nil || len(resp.Kvs) != 1 || !strings.Contains(string(resp.Kvs[0].Value), `"PublicIP":"172.31.0.9"`) || resp.Kvs[0].Lease == 0 {
		t.Fatalf("stored lease %v, %v", resp.Kvs, err)
	}
	// Another node with that IP is refused; asking for a's subnet gets another one.
	if _, err := m.AcquireLease(ctx, attrs("b", "172.31.0.9"), netip.Prefix{}); err == nil || !strings.Contains(err.Error(), "already claimed by node \"a\"") {
		t.Fatalf("duplicate public IP: %v", err)
	}
	b, err := New(cli, "", time.Hour, log).AcquireLease(ctx, attrs("b", "172.31.0.3"), a.Subnet)
	if err != nil || b.Subnet == a.Subnet {
		t.Fatalf("b got %v, %v (a has %s)", b, err, a.Subnet)
	}

	// A lease outside the current network config is released, not kept or leaked.
	srv.Put("/coreos.com/network/subnets/10.99.0.0-24", `{"PublicIP":"172.31.0.7","BackendType":"vxlan","NodeName":"moved"}`)
	if l, err := New(cli, "", time.Hour, log).AcquireLease(ctx, attrs("moved", "172.31.0.7"), netip.Prefix{}); err != nil || !netip.MustParsePrefix("10.244.0.0/16").Contains(l.Subnet.Addr()) {
		t.Fatalf("moved: %v, %v", l, err)
	}
	if resp, err := cli.Get(ctx, "/coreos.com/network/subnets/10.99.0.0-24"); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("stale lease still there: %v, %v", resp.Kvs, err)
	}

	// Nodes starting together never share a subnet (compare-and-swap).
	var mu sync.Mutex
	got := map[netip.Prefix]string{a.Subnet: "a", b.Subnet: "b"}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			node := fmt.Sprintf("race%d", i)
			l, err := New(cli, "", time.Hour, log).AcquireLease(ctx, attrs(node, fmt.Sprintf("172.31.1.%d", i+1)), netip.Prefix{})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("%s: %v", node, err)
				return
			}
			if other, dup := got[l.Subnet]; dup {
				t.Errorf("%s and %s share %s", node, other, l.Subnet)
			}
			got[l.Subnet] = node
		}(i)
	}
	wg.Wait()

	// Renewal extends the lease; a deleted key is reported gone.
	before := again.Expiration
	if err := m.RenewLease(ctx, again); err != nil || again.Expiration.Before(before) {
		t.Fatalf("renew: %v, expiry %s -> %s", err, before, again.Expiration)
	}
	if _, err := cli.Delete(ctx, "/coreos.com/network/subnets/"+subnet.KeyName(a.Subnet)); err != nil {
		t.Fatal(err)
	}
	if err := m.RenewLease(ctx, again); !errors.Is(err, subnet.ErrLeaseGone) {
		t.Fatalf("renew of a deleted lease: %v", err)
	}

	// An expired lease is free again: the next node asking for it gets it.
	short := New(cli, "", 2*time.Second, log)
	want := netip.MustParsePrefix("10.244.200.0/24")
	if l, err := short.AcquireLease(ctx, attrs("gone", "172.31.2.1"), want); err != nil || l.Subnet != want {
		t.Fatalf("gone: %v, %v", l, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		l, err := New(cli, "", time.Hour, log).AcquireLease(ctx, attrs("heir", "172.31.2.2"), want)
		if err != nil {
			t.Fatal(err)
		}
		if l.Subnet == want {
			break
		}
		if _, err := cli.Delete(ctx, "/coreos.com/network/subnets/"+subnet.KeyName(l.Subnet)); err != nil { // undo, try again
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("expired lease not reclaimed within 15s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestIntegrationEtcdWatch(t *testing.T) {
	srv := etcdtest.Start(t, netip.Addr{})
	srv.Put("/coreos.com/network/subnets/10.244.1.0-24", `{"PublicIP":"172.31.0.2","BackendType":"vxlan"}`)
	m := New(srv.Client(), "", time.Hour, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan subnet.Batch)
	go func() { _ = m.WatchLeases(ctx, out) }()
	next := func() subnet.Batch {
		t.Helper()
		select {
		case b := <-out:
			return b
		case <-time.After(10 * time.Second):
			t.Fatal("no lease batch within 10s")
			return subnet.Batch{}
		}
	}
	if b := next(); !b.Snapshot || len(b.Events) != 1 || b.Events[0].Lease.Attrs.PublicIP.String() != "172.31.0.2" {
		t.Fatalf("first batch %+v", b)
	}
	srv.Put("/coreos.com/network/subnets/10.244.2.0-24", `{"PublicIP":"172.31.0.3","BackendType":"vxlan"}`)
	if b := next(); b.Snapshot || len(b.Events) != 1 || b.Events[0].Type != subnet.Added || b.Events[0].Lease.Subnet.String() != "10.244.2.0/24" {
		t.Fatalf("add batch %+v", b)
	}
	srv.Delete("/coreos.com/network/subnets/10.244.1.0-24")
	if b := next(); len(b.Events) != 1 || b.Events[0].Type != subnet.Removed || b.Events[0].Lease.Subnet.String() != "10.244.1.0/24" {
		t.Fatalf("delete batch %+v", b)
	}
	// An outage: the watch resumes from its revision and misses nothing.
	srv.Stop()
	srv.Restart()
	srv.Put("/coreos.com/network/subnets/10.244.3.0-24", `{"PublicIP":"172.31.0.4","BackendType":"vxlan"}`)
	known := map[netip.Prefix]subnet.Lease{}
	deadline := time.Now().Add(20 * time.Second)
	for len(known) != 1 || known[netip.MustParsePrefix("10.244.3.0/24")].Subnet.Bits() != 24 {
		if time.Now().After(deadline) {
			t.Fatalf("after outage: %v", known)
		}
		b := next()
		if b.Snapshot {
			t.Fatalf("resumed watch relisted instead of resuming: %+v", b)
		}
		b.Apply(known)
	}
}

// TestIntegrationEtcdWatchRelistsAfterCompaction: a watch cut off while
// leases changed and history was compacted relists (a snapshot with the
// current leases) instead of missing the changes.
func TestIntegrationEtcdWatchRelistsAfterCompaction(t *testing.T) {
	srv := etcdtest.Start(t, netip.Addr{})
	proxy := etcdtest.NewProxy(t, srv.Local)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{proxy.URL}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	srv.Put("/coreos.com/network/subnets/10.244.1.0-24", `{"PublicIP":"172.31.0.2","BackendType":"vxlan"}`)
	m := New(cli, "", time.Hour, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan subnet.Batch)
	go func() { _ = m.WatchLeases(ctx, out) }()
	next := func() subnet.Batch {
		t.Helper()
		select {
		case b := <-out:
			return b
		case <-time.After(30 * time.Second):
			t.Fatal("no lease batch within 30s")
			return subnet.Batch{}
		}
	}
	if b := next(); !b.Snapshot || len(b.Events) != 1 {
		t.Fatalf("first batch %+v", b)
	}

	// While the watcher is cut off: one lease added, one removed, history compacted.
	proxy.Cut()
	direct := srv.Client()
	srv.Put("/coreos.com/network/subnets/10.244.2.0-24", `{"PublicIP":"172.31.0.3","BackendType":"vxlan"}`)
	del, err := direct.Delete(ctx, "/coreos.com/network/subnets/10.244.1.0-24")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Compact(ctx, del.Header.Revision); err != nil {
		t.Fatal(err)
	}
	proxy.Restore()

	b := next()
	if !b.Snapshot {
		t.Fatalf("after compaction: got an incremental batch %+v, want a relist", b)
	}
	known := map[netip.Prefix]subnet.Lease{}
	b.Apply(known)
	if len(known) != 1 || known[netip.MustParsePrefix("10.244.2.0/24")].Attrs.PublicIP.String() != "172.31.0.3" {
		t.Fatalf("relist: %v, want only 10.244.2.0/24", known)
	}
}
