package ebpf

import (
	"net/netip"
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	"github.com/hoist-project/hoist/proxy/changes"
	ct "github.com/hoist-project/hoist/proxy/changes/changestest"
)

func TestRenderAndConnect(t *testing.T) {
	tr := changes.NewTracker("n0", nil)
	tr.SetService(ct.Service("web", "10.96.0.10", []v1.ServicePort{
		ct.Port("http", v1.ProtocolTCP, 80, "http", 0), ct.Port("dns", v1.ProtocolUDP, 53, "dns", 0)}, ct.Affinity(30), ct.ExternalIPs("203.0.113.7")))
	tr.SetSlice(ct.Slice("web", "web-0", []discovery.EndpointPort{ct.SlicePort("http", v1.ProtocolTCP, 8080), ct.SlicePort("dns", v1.ProtocolUDP, 5353)},
		ct.EP{IP: "10.244.1.5"}, ct.EP{IP: "10.244.1.6"}, ct.EP{IP: "10.244.1.7", Terminating: true}))
	tr.SetService(ct.Service("empty", "10.96.0.11", []v1.ServicePort{ct.Port("", v1.ProtocolTCP, 80, "80", 0)}))
	st, _, _ := tr.Snapshot()
	ids := NewIDs()
	m := Render(st, ids, Options{})

	ap := netip.MustParseAddrPort
	for _, c := range []struct {
		dst   string
		proto v1.Protocol
		slot  int
		want  string
		v     Verdict
	}{
		{"10.96.0.10:80", v1.ProtocolTCP, 0, "10.244.1.5:8080", Rewrite},
		{"10.96.0.10:80", v1.ProtocolTCP, 1, "10.244.1.6:8080", Rewrite},
		{"203.0.113.7:80", v1.ProtocolTCP, 1, "10.244.1.6:8080", Rewrite},
		{"10.96.0.10:53", v1.ProtocolUDP, 0, "10.244.1.5:5353", Rewrite},
		{"10.96.0.10:53", v1.ProtocolTCP, 0, "10.96.0.10:53", Pass},
		{"10.96.0.11:80", v1.ProtocolTCP, 0, "10.96.0.11:80", Refuse},
		{"10.1.2.3:80", v1.ProtocolTCP, 0, "10.1.2.3:80", Pass},
	} {
		var n int
		got, v := m.Connect(ap(c.dst), c.proto, func(count int) int { n = count; return c.slot })
		if got != ap(c.want) || v != c.v {
			t.Errorf("connect %s/%s slot %d: %s %v, want %s %v", c.dst, c.proto, c.slot, got, v, c.want, c.v)
		}
		if v == Rewrite && n != 2 {
			t.Errorf("connect %s: %d slots, want 2 (terminating excluded)", c.dst, n)
		}
	}
	for k, v := range m.Services {
		if k.Proto == 6 && v.Count == 2 && (v.Flags&flagAffinity == 0 || v.AffinityTimeout != 30) {
			t.Errorf("affinity not rendered: %+v", v)
		}
	}

	// IDs are stable across syncs, so an unchanged service keeps its slots.
	again := Render(st, ids, Options{})
	for k, v := range m.Services {
		if again.Services[k] != v {
			t.Fatalf("re-render changed %+v: %+v → %+v", k, v, again.Services[k])
		}
	}
}

func TestRenderNodePort(t *testing.T) {
	tr := changes.NewTracker("n0", nil)
	tr.SetService(ct.Service("np", "10.96.0.10", []v1.ServicePort{ct.Port("http", v1.ProtocolTCP, 80, "http", 30080)}, ct.NodePort, ct.ExternalIPs("203.0.113.7")))
	tr.SetSlice(ct.Slice("np", "np-0", []discovery.EndpointPort{ct.SlicePort("http", v1.ProtocolTCP, 8080)},
		ct.EP{IP: "10.244.1.5", Node: "n0"}, ct.EP{IP: "10.244.2.5", Node: "n1"}))
	tr.SetService(ct.Service("remote", "10.96.0.11", []v1.ServicePort{ct.Port("", v1.ProtocolTCP, 80, "80", 30081)}, ct.NodePort))
	tr.SetSlice(ct.Slice("remote", "remote-0", []discovery.EndpointPort{ct.SlicePort("", v1.ProtocolTCP, 8080)}, ct.EP{IP: "10.244.2.6", Node: "n1"}))
	tr.SetService(ct.Service("local", "10.96.0.12", []v1.ServicePort{ct.Port("", v1.ProtocolTCP, 80, "80", 30082)}, ct.NodePort, ct.ExternalLocal))
	tr.SetSlice(ct.Slice("local", "local-0", []discovery.EndpointPort{ct.SlicePort("", v1.ProtocolTCP, 8080)},
		ct.EP{IP: "10.244.1.7", Node: "n0"}, ct.EP{IP: "10.244.2.7", Node: "n1"}))
	tr.SetService(ct.Service("elsewhere", "10.96.0.13", []v1.ServicePort{ct.Port("", v1.ProtocolTCP, 80, "80", 30083)}, ct.NodePort, ct.ExternalLocal))
	tr.SetSlice(ct.Slice("elsewhere", "elsewhere-0", []discovery.EndpointPort{ct.SlicePort("", v1.ProtocolTCP, 8080)}, ct.EP{IP: "10.244.2.8", Node: "n1"}))
	st, _, _ := tr.Snapshot()
	node := netip.MustParseAddr("172.31.0.2")
	m := Render(st, NewIDs(), Options{NodeAddresses: []netip.Addr{node}, LocalhostNodePorts: true})
	ap := netip.MustParseAddrPort
	for _, c := range []struct {
		name    string
		ingress bool // tc from outside, else a local socket
		dst     string
		slot    int
		want    string
		v       Verdict
	}{
		{"local process, node address", false, "172.31.0.2:30080", 1, "10.244.2.5:8080", Rewrite},
		{"local process, localhost", false, "127.0.0.1:30080", 0, "10.244.1.5:8080", Rewrite},
		{"outside, Cluster: local backend keeps the client IP", true, "172.31.0.2:30080", 0, "10.244.1.5:8080", Rewrite},
		{"outside, Cluster: remote backend is SNATed", true, "172.31.0.2:30080", 1, "10.244.2.5:8080", SNAT},
		{"outside, Cluster: only remote backends", true, "172.31.0.2:30081", 0, "10.244.2.6:8080", SNAT},
		{"outside, Local: local backends only", true, "172.31.0.2:30082", 0, "10.244.1.7:8080", Rewrite},
		{"outside, Local: no local backend refuses", true, "172.31.0.2:30083", 0, "172.31.0.2:30083", Refuse},
		{"local process, Local: every backend", false, "172.31.0.2:30083", 0, "10.244.2.8:8080", Rewrite},
		{"outside: external IP", true, "203.0.113.7:80", 0, "10.244.1.5:8080", Rewrite},
		{"outside: no localhost", true, "127.0.0.1:30080", 0, "127.0.0.1:30080", Pass},
		{"outside: cluster IPs are for sockets", true, "10.96.0.10:80", 0, "10.96.0.10:80", Pass},
		{"local process: remote backend", false, "172.31.0.2:30081", 0, "10.244.2.6:8080", Rewrite},
	} {
		conn := m.Connect
		if c.ingress {
			conn = m.Ingress
		}
		var slots int
		pick := func(n int) int { slots = n; return c.slot }
		if got, v := conn(ap(c.dst), v1.ProtocolTCP, pick); got != ap(c.want) || v != c.v || c.slot >= slots && v != Refuse && v != Pass {
			t.Errorf("%s: %s → %s %v, want %s %v", c.name, c.dst, got, v, c.want, c.v)
		}
	}
}

// A restarted proxy adopts the IDs in the kernel's maps, even when a
// fresh allocator would have numbered the services differently.
func TestIDsAdoptedAfterRestart(t *testing.T) {
	tr := changes.NewTracker("n0", nil)
	for n, ip := range map[string]string{"a": "10.96.0.1", "b": "10.96.0.2", "c": "10.96.0.3"} {
		tr.SetService(ct.Service(n, ip, []v1.ServicePort{ct.Port("", v1.ProtocolTCP, 80, "80", 0)}))
		tr.SetSlice(ct.Slice(n, n+"-0", []discovery.EndpointPort{ct.SlicePort("", v1.ProtocolTCP, 80)}, ct.EP{IP: "10.244.0.9"}))
	}
	ids := NewIDs()
	// Services created one at a time in the order c, b, a get IDs 1, 2, 3;
	// a fresh allocator numbers them by name.
	var running Maps
	for _, keep := range [][]string{{"c"}, {"c", "b"}, {"c", "b", "a"}} {
		st, _, _ := tr.Snapshot()
		sub := changes.State{Services: map[changes.ServicePortName]*changes.ServicePort{}, Endpoints: st.Endpoints}
		for n, sp := range st.Services {
			for _, k := range keep {
				if n.Name == k {
					sub.Services[n] = sp
				}
			}
		}
		running = Render(sub, ids, Options{})
	}
	st, _, _ := tr.Snapshot()
	restarted := NewIDs()
	restarted.Adopt(running.Services)
	again := Render(st, restarted, Options{})
	if !reflect.DeepEqual(again, running) {
		t.Fatalf("restart renders other maps:\nrunning %+v\nrestart %+v", running, again)
	}
	if fresh := Render(st, NewIDs(), Options{}); reflect.DeepEqual(fresh, running) {
		t.Fatal("test does not exercise adoption: a fresh allocator gives the same IDs")
	}

	// A deleted service's ID is not reused by the same render (the kernel
	// still holds its entries until the apply), only by the next one.
	tr.DeleteService(ct.Service("c", "10.96.0.3", nil))
	tr.SetService(ct.Service("d", "10.96.0.4", []v1.ServicePort{ct.Port("", v1.ProtocolTCP, 80, "80", 0)}))
	st, _, _ = tr.Snapshot()
	m := Render(st, restarted, Options{})
	idOf := func(m Maps, ip string) uint32 {
		return m.Services[ServiceKey{Vip: ip4(netip.MustParseAddr(ip)), Port: port(80), Proto: 6}].Id
	}
	if idOf(m, "10.96.0.4") == idOf(running, "10.96.0.3") {
		t.Fatalf("the deleted service's ID %d was reused in the same sync", idOf(running, "10.96.0.3"))
	}
}
