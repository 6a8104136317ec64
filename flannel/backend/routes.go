package backend

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hoist-project/hoist/flannel/reconcile"
)

// RouteProtocol tags every route flanneld owns ("proto 78" in `ip route`),
// which is how a resync finds them again, and leaves everyone else's alone.
const RouteProtocol netlink.RouteProtocol = 0x4e

// Route is an owned route, comparable so reconcile can diff it.
type Route struct {
	Dst    netip.Prefix
	Gw     netip.Addr
	Link   int
	Onlink bool
}

func (r Route) String() string {
	s := fmt.Sprintf("%s via %s dev #%d", r.Dst, r.Gw, r.Link)
	if r.Onlink {
		s += " onlink"
	}
	return s
}

// OwnedRoutes lists the main-table IPv4 routes tagged with RouteProtocol.
func OwnedRoutes() (map[netip.Prefix]Route, error) {
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list owned routes: %w", err)
	}
	out := map[netip.Prefix]Route{}
	for _, r := range rs {
		if r.Dst == nil {
			continue
		}
		dst, ok := prefixOf(r.Dst)
		if !ok {
			continue
		}
		gw, _ := netip.AddrFromSlice(r.Gw.To4())
		out[dst] = Route{Dst: dst, Gw: gw, Link: r.LinkIndex, Onlink: r.Flags&int(netlink.FLAG_ONLINK) != 0}
	}
	return out, nil
}

// ApplyRoutes carries out plan: replaces first (a changed route never
// disappears in between), then deletes.
func ApplyRoutes(plan reconcile.Plan[Route]) error {
	for _, r := range plan.Upsert {
		if err := netlink.RouteReplace(toNetlink(r)); err != nil {
			return fmt.Errorf("route %s: %w", r, err)
		}
	}
	for _, r := range plan.Delete {
		if err := netlink.RouteDel(toNetlink(r)); err != nil && !IsNotFound(err) {
			return fmt.Errorf("delete route %s: %w", r, err)
		}
	}
	return nil
}

func toNetlink(r Route) *netlink.Route {
	nr := &netlink.Route{
		LinkIndex: r.Link,
		Dst:       &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), 32)},
		Gw:        r.Gw.AsSlice(),
		Protocol:  RouteProtocol,
		Table:     unix.RT_TABLE_MAIN,
		Scope:     netlink.SCOPE_UNIVERSE,
	}
	if r.Onlink {
		nr.Flags = int(netlink.FLAG_ONLINK)
	}
	return nr
}

// Count records a plan's changes in the metrics; resync changes are repairs.
func (e Env) Count(kind string, why Reason, upserts, deletes int) {
	for op, n := range map[string]int{"add": upserts, "delete": deletes} {
		if n == 0 {
			continue
		}
		e.Metrics.Applied.WithLabelValues(kind, op).Add(float64(n))
		if why == Resync {
			e.Metrics.Repaired.WithLabelValues(kind, op).Add(float64(n))
			e.Log.Info("resync repaired entries", "kind", kind, "op", op, "count", n)
		}
	}
}

// Connected reports whether ip is reachable without a gateway (same L2) and
// over which link.
func Connected(ip netip.Addr) (link int, ok bool, err error) {
	rs, err := netlink.RouteGet(ip.AsSlice())
	if err != nil {
		return 0, false, fmt.Errorf("route to %s: %w", ip, err)
	}
	if len(rs) == 0 {
		return 0, false, nil
	}
	return rs[0].LinkIndex, rs[0].Gw == nil, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP.To4())
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a, bits), true
}

// IsNotFound reports whether a netlink delete failed because the entry is already gone.
func IsNotFound(err error) bool {
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT)
}
