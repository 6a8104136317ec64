// Package conntrack removes stale UDP conntrack entries of services. UDP
// has no connection end, so an entry that DNATs a client to an endpoint
// that went away (or to nothing, from before the service had endpoints)
// keeps the client's traffic there as long as it keeps sending. The
// reconciler compares the kernel's table with the current endpoints on
// every sync, so entries are cleaned also after proxy downtime, not only
// when an event is seen.
package conntrack

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
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
}

// AllowedFrom derives Allowed from a state. An endpoint that still serves
// keeps its flows even when terminating; new flows avoid it in the rules.
func AllowedFrom(st changes.State) Allowed {
	a := Allowed{ByDst: map[netip.AddrPort]map[netip.AddrPort]bool{}, ByNodePort: map[uint16]map[netip.AddrPort]bool{}}
	for name, sp := range st.Services {
		if sp.Protocol != v1.ProtocolUDP {
			continue
		}
		eps := map[netip.AddrPort]bool{}
		for _, e := range st.Endpoints[name] {
			if e.Serving {
				eps[e.AddrPort()] = true
			}
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

// Reconcile deletes every stale UDP flow and returns how many it deleted.
func (c *Cleaner) Reconcile(a Allowed) (uint, error) {
	check := a.WithGone(c.prev)
	if len(check.ByDst) == 0 && len(check.ByNodePort) == 0 {
		return 0, nil
	}
	n, err := c.h.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filter{check})
	if err != nil {
		return n, fmt.Errorf("conntrack: delete stale UDP flows: %w", err)
	}
	c.prev = a
	return n, nil
}

// WithGone adds the destinations prev had and a lacks, with no allowed
// endpoint, so their flows count as stale.
func (a Allowed) WithGone(prev Allowed) Allowed {
	out := Allowed{ByDst: map[netip.AddrPort]map[netip.AddrPort]bool{}, ByNodePort: map[uint16]map[netip.AddrPort]bool{}}
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
	if flow.Forward.Protocol != unix.IPPROTO_UDP {
		return false
	}
	return f.a.Stale(addrPort(flow.Forward.DstIP, flow.Forward.DstPort), addrPort(flow.Reverse.SrcIP, flow.Reverse.SrcPort))
}

func addrPort(ip net.IP, port uint16) netip.AddrPort {
	a, _ := netip.AddrFromSlice(ip.To4())
	return netip.AddrPortFrom(a, port)
}
