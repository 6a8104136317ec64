package conntrack_test

import (
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	"github.com/hoist-project/hoist/proxy/changes"
	ct "github.com/hoist-project/hoist/proxy/changes/changestest"
	"github.com/hoist-project/hoist/proxy/conntrack"
)

func TestStale(t *testing.T) {
	tr := changes.NewTracker("n0", nil)
	tr.SetService(ct.Service("dns", "10.96.0.10", []v1.ServicePort{ct.Port("dns", v1.ProtocolUDP, 53, "53", 30053), ct.Port("tcp", v1.ProtocolTCP, 53, "53", 0)}, ct.NodePort))
	tr.SetSlice(ct.Slice("dns", "dns-0", []discovery.EndpointPort{ct.SlicePort("dns", v1.ProtocolUDP, 5353)},
		ct.EP{IP: "10.244.1.5"}, ct.EP{IP: "10.244.1.6", Terminating: true}, ct.EP{IP: "10.244.1.7", NotReady: true}))
	st, _, _ := tr.Snapshot()
	a := conntrack.AllowedFrom(st)
	ap := netip.MustParseAddrPort
	for _, c := range []struct {
		dst, reply string
		stale      bool
	}{
		{"10.96.0.10:53", "10.244.1.5:5353", false},   // current endpoint
		{"10.96.0.10:53", "10.244.1.6:5353", false},   // terminating but serving: existing flow kept
		{"10.96.0.10:53", "10.244.1.7:5353", true},    // not serving
		{"10.96.0.10:53", "10.244.9.9:5353", true},    // removed endpoint
		{"10.96.0.10:53", "10.96.0.10:53", true},      // from before there were endpoints: never DNATed
		{"172.16.0.1:30053", "10.244.9.9:5353", true}, // node port
		{"10.96.0.11:53", "10.244.9.9:5353", false},   // not a service
	} {
		if got := a.Stale(ap(c.dst), ap(c.reply)); got != c.stale {
			t.Errorf("Stale(%s, %s) = %v, want %v", c.dst, c.reply, got, c.stale)
		}
	}
}

func TestDeletedServiceFlowsAreStale(t *testing.T) {
	tr := changes.NewTracker("n0", nil)
	svc := ct.Service("dns", "10.96.0.10", []v1.ServicePort{ct.Port("dns", v1.ProtocolUDP, 53, "53", 0)})
	tr.SetService(svc)
	tr.SetSlice(ct.Slice("dns", "dns-0", []discovery.EndpointPort{ct.SlicePort("dns", v1.ProtocolUDP, 5353)}, ct.EP{IP: "10.244.1.5"}))
	before, _, _ := tr.Snapshot()
	tr.DeleteService(svc)
	after, _, _ := tr.Snapshot()
	merged := conntrack.AllowedFrom(after).WithGone(conntrack.AllowedFrom(before))
	if !merged.Stale(netip.MustParseAddrPort("10.96.0.10:53"), netip.MustParseAddrPort("10.244.1.5:5353")) {
		t.Fatal("a flow of a deleted service is not stale")
	}
}

func TestStaleTCP(t *testing.T) {
	tr := changes.NewTracker("n0", nil)
	tr.SetService(ct.Service("web", "10.96.0.20", []v1.ServicePort{ct.Port("http", v1.ProtocolTCP, 80, "8080", 0)}))
	tr.SetService(ct.Service("empty", "10.96.0.21", []v1.ServicePort{ct.Port("http", v1.ProtocolTCP, 80, "8080", 0)}))
	tr.SetSlice(ct.Slice("web", "web-0", []discovery.EndpointPort{ct.SlicePort("http", v1.ProtocolTCP, 8080)}, ct.EP{IP: "10.244.1.5"}))
	st, _, _ := tr.Snapshot()
	a := conntrack.AllowedFrom(st)
	ap := netip.MustParseAddrPort
	for _, c := range []struct {
		dst, reply string
		synSent    bool
		stale      bool
	}{
		{"10.96.0.20:80", "10.96.0.20:80", true, true},    // sent before the rules: never DNATed
		{"10.96.0.20:80", "10.244.1.5:8080", true, false}, // DNATed, waiting for the endpoint
		{"10.96.0.20:80", "10.96.0.20:80", false, false},  // answered: not ours to judge
		{"10.96.0.21:80", "10.96.0.21:80", true, false},   // no endpoint: the REJECT answers it
		{"10.96.0.22:80", "10.96.0.22:80", true, false},   // not a service
		{"10.96.0.20:443", "10.96.0.20:443", true, false}, // not a service port
	} {
		if got := a.StaleTCP(ap(c.dst), ap(c.reply), c.synSent); got != c.stale {
			t.Errorf("StaleTCP(%s, %s, synSent=%v) = %v, want %v", c.dst, c.reply, c.synSent, got, c.stale)
		}
	}
}
