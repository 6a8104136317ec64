package ebpf

import (
	"net/netip"
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
	m := Render(st, ids)

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
	again := Render(st, ids)
	for k, v := range m.Services {
		if again.Services[k] != v {
			t.Fatalf("re-render changed %+v: %+v → %+v", k, v, again.Services[k])
		}
	}
}
