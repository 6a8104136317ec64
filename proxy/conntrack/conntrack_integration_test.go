package conntrack_test

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/proxy/changes"
	ct "github.com/hoist-project/hoist/proxy/changes/changestest"
	"github.com/hoist-project/hoist/proxy/conntrack"
)

// TestIntegrationReconcileDeletesUnNATedSYN puts TCP entries into a
// throwaway netns's conntrack table and checks that Reconcile deletes the
// un-DNATed SYN_SENT one to a served cluster IP and nothing else.
func TestIntegrationReconcileDeletesUnNATedSYN(t *testing.T) {
	testenv.RequireRoot(t)
	name := testenv.UniqueName("hoist-ct")
	path, err := nsutil.CreateNamed(name)
	if err != nil {
		t.Fatalf("create netns: %v", err)
	}
	t.Cleanup(func() {
		if err := nsutil.DeleteNamed(name); err != nil {
			t.Errorf("delete netns: %v", err)
		}
	})
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	if err != nil {
		t.Fatalf("netlink in the test netns: %v (is the nf_conntrack module loadable? apt-get install kmod)", err)
	}
	defer h.Close()

	ip := func(s string) net.IP { return net.ParseIP(s).To4() } // netlink encodes the 4-byte form
	flow := func(dst, replySrc string, dport, rsport uint16, state uint8) *netlink.ConntrackFlow {
		return &netlink.ConntrackFlow{FamilyType: unix.AF_INET, TimeOut: 100,
			Forward:   netlink.IPTuple{SrcIP: ip("10.244.2.7"), DstIP: ip(dst), Protocol: unix.IPPROTO_TCP, SrcPort: 40000 + dport + rsport, DstPort: dport},
			Reverse:   netlink.IPTuple{SrcIP: ip(replySrc), DstIP: ip("10.244.2.7"), Protocol: unix.IPPROTO_TCP, SrcPort: rsport, DstPort: 40000 + dport + rsport},
			ProtoInfo: &netlink.ProtoInfoTCP{State: state}}
	}
	flows := map[string]*netlink.ConntrackFlow{
		"stale":       flow("10.96.0.20", "10.96.0.20", 80, 80, nl.TCP_CONNTRACK_SYN_SENT),
		"dnated":      flow("10.96.0.20", "10.244.1.5", 80, 8080, nl.TCP_CONNTRACK_SYN_SENT),
		"established": flow("10.96.0.20", "10.96.0.20", 81, 81, nl.TCP_CONNTRACK_ESTABLISHED),
		"elsewhere":   flow("10.96.0.99", "10.96.0.99", 80, 80, nl.TCP_CONNTRACK_SYN_SENT),
	}
	for k, f := range flows {
		if err := h.ConntrackCreate(netlink.ConntrackTable, unix.AF_INET, f); err != nil {
			t.Fatalf("create %s conntrack entry: %v", k, err)
		}
	}

	tr := changes.NewTracker("n0", nil)
	tr.SetService(ct.Service("web", "10.96.0.20", []v1.ServicePort{ct.Port("http", v1.ProtocolTCP, 80, "8080", 0), ct.Port("alt", v1.ProtocolTCP, 81, "8080", 0)}))
	tr.SetSlice(ct.Slice("web", "web-0", []discovery.EndpointPort{ct.SlicePort("http", v1.ProtocolTCP, 8080), ct.SlicePort("alt", v1.ProtocolTCP, 8080)}, ct.EP{IP: "10.244.1.5"}))
	st, _, _ := tr.Snapshot()
	c, err := conntrack.New(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n, err := c.Reconcile(conntrack.AllowedFrom(st))
	if err != nil {
		t.Fatal(err)
	}
	left, err := h.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	for _, f := range left {
		for k, want := range flows {
			if f.Forward.DstIP.Equal(want.Forward.DstIP) && f.Forward.DstPort == want.Forward.DstPort && f.Reverse.SrcIP.Equal(want.Reverse.SrcIP) {
				present[k] = true
			}
		}
	}
	if n != 1 || present["stale"] || !present["dnated"] || !present["established"] || !present["elsewhere"] {
		t.Fatalf("Reconcile deleted %d entries; left %v (want only the un-DNATed SYN_SENT one gone)", n, present)
	}
}
