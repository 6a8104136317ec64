// Package conntrack removes stale conntrack entries of services. UDP has
// no connection end, so an entry that DNATs a client to an endpoint that
// went away (or to nothing, from before the service had endpoints) keeps
// the client's traffic there as long as it keeps sending. TCP has the same
// problem in one case: a SYN to a cluster IP sent before the proxy knew the
// service leaves un-DNATed, and its SYN_SENT entry catches the SYN
// retransmits (same tuple) after the rules exist. The reconciler compares
// the kernel's table with the current endpoints on every sync, so entries
// are cleaned also after proxy downtime, not only when an event is seen.
package conntrack

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"

	"github.com/hoist-project/hoist/proxy/changes"
)

// Allowed says, for each UDP service destination, which endpoints may
// answer it: cluster IPs and external IPs by address and port, NodePorts
// by port.
type Allowed struct {
	ByDst      map[netip.AddrPort]map[netip.AddrPort]bool
	ByNodePort map[uint16]map[netip.AddrPort]bool
	// TCPClusterIPs are the TCP cluster IP destinations the rules DNAT
	// (some endpoint serves): an unanswered entry to one of them that
	// was not DNATed predates the rules.
	TCPClusterIPs map[netip.AddrPort]bool
}

// AllowedFrom derives Allowed from a state. An endpoint that still serves
// keeps its flows even when terminating; new flows avoid it in the rules.
func AllowedFrom(st changes.State) Allowed {
	a := Allowed{ByDst: map[netip.AddrPort]map[netip.AddrPort]bool{}, ByNodePort: map[uint16]map[netip.AddrPort]bool{},
		TCPClusterIPs: map[netip.AddrPort]bool{}}
	for name, sp := range st.Services {
		eps := map[netip.AddrPort]bool{}
		for _, e := range st.Endpoints[name] {
			if e.Serving {
				eps[e.AddrPort()] = true
			}
		}
		if sp.Protocol == v1.ProtocolTCP && len(eps) > 0 && sp.ClusterIP.IsValid() {
			a.TCPClusterIPs[netip.AddrPortFrom(sp.ClusterIP, uint16(sp.Port))] = true
		}
		if sp.Protocol != v1.ProtocolUDP {
			continue
		}
		for _, ip := range append([]netip.Addr{sp.ClusterIP}, sp.ExternalIPs...) {
			a.ByDst[netip.AddrPortFrom(ip, uint16(sp.Port))] = eps
		}
		if sp.NodePort != 0 {
			a.ByNodePort[uint16(sp.NodePort)] = eps
		}
	}
	return a
}

// Stale reports whether a UDP flow (original destination, reply source)
// belongs to a service and is answered by something not allowed.
func (a Allowed) Stale(origDst, replySrc netip.AddrPort) bool {
	eps, ok := a.ByDst[origDst]
	if !ok {
		if eps, ok = a.ByNodePort[origDst.Port()]; !ok {
			return false
		}
	}
	return !eps[replySrc]
}

// StaleTCP reports whether a TCP flow with no reply yet (SYN_SENT) to a
// cluster IP the rules now DNAT went out un-DNATed: it was sent before
// the rules existed, and its retransmits would keep missing them.
func (a Allowed) StaleTCP(origDst, replySrc netip.AddrPort, synSent bool) bool {
	return synSent && replySrc == origDst && a.TCPClusterIPs[origDst]
}

// Cleaner deletes stale flows through a netlink handle bound to one
// network namespace. It remembers the previous sync's destinations so the
// flows of a deleted service are removed too.
type Cleaner struct {
	h    *netlink.Handle
	prev Allowed
}

// New opens a cleaner for the network namespace at nsPath ("" for the
// current one).
func New(nsPath string) (*Cleaner, error) {
	if nsPath == "" {
		h, err := netlink.NewHandle(unix.NETLINK_NETFILTER)
		if err != nil {
			return nil, fmt.Errorf("conntrack: netlink: %w", err)
		}
		return &Cleaner{h: h}, nil
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("conntrack: open netns %s: %w", nsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("conntrack: netlink in %s: %w", nsPath, err)
	}
	return &Cleaner{h: h}, nil
}

// Close releases the netlink handle.
func (c *Cleaner) Close() { c.h.Close() }

// Reconcile deletes every stale flow and returns how many it deleted.
func (c *Cleaner) Reconcile(a Allowed) (uint, error) {
	check := a.WithGone(c.prev)
	if len(check.ByDst) == 0 && len(check.ByNodePort) == 0 && len(check.TCPClusterIPs) == 0 {
		return 0, nil
	}
	n, err := c.h.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filter{check})
	if err != nil {
		return n, fmt.Errorf("conntrack: delete stale flows: %w", err)
	}
	c.prev = a
	return n, nil
}

// WithGone adds the destinations prev had and a lacks, with no allowed
// endpoint, so their flows count as stale.
func (a Allowed) WithGone(prev Allowed) Allowed {
	out := Allowed{ByDst: map[netip.AddrPort]map[netip.AddrPort]bool{}, ByNodePort: map[uint16]map[netip.AddrPort]bool{},
		TCPClusterIPs: a.TCPClusterIPs}
	for k := range prev.ByDst {
		out.ByDst[k] = nil
	}
	for k := range prev.ByNodePort {
		out.ByNodePort[k] = nil
	}
	for k, v := range a.ByDst {
		out.ByDst[k] = v
	}
	for k, v := range a.ByNodePort {
		out.ByNodePort[k] = v
	}
	return out
}

type filter struct{ a Allowed }

func (f filter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	dst, reply := addrPort(flow.Forward.DstIP, flow.Forward.DstPort), addrPort(flow.Reverse.SrcIP, flow.Reverse.SrcPort)
	switch flow.Forward.Protocol {
	case unix.IPPROTO_UDP:
		return f.a.Stale(dst, reply)
	case unix.IPPROTO_TCP:
		tcp, ok := flow.ProtoInfo.(*netlink.ProtoInfoTCP)
		return f.a.StaleTCP(dst, reply, ok && tcp.State == nl.TCP_CONNTRACK_SYN_SENT)
	}
	return false
}

func addrPort(ip net.IP, port uint16) netip.AddrPort {
	a, _ := netip.AddrFromSlice(ip.To4())
	return netip.AddrPortFrom(a, port)
}
