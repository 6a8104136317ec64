package fabric

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hoist-project/hoist/internal/fabric/record"
)

// usedPrefix is a prefix the fabric must not overlap, with where it comes from.
type usedPrefix struct {
	prefix netip.Prefix
	source string
}

// usedPrefixes returns every IPv4 route destination of the root namespace
// (all tables, default routes excepted: a fabric is more specific than them
// and never uses them) plus the subnets of all recorded fabrics.
func usedPrefixes(stateDir string) ([]usedPrefix, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes of the root namespace: %w", err)
	}
	var used []usedPrefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		addr, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok || ones == 0 {
			continue
		}
		dev := ""
		if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
			dev = " dev " + l.Attrs().Name
		}
		used = append(used, usedPrefix{netip.PrefixFrom(addr.Unmap(), ones).Masked(), "route " + r.Dst.String() + dev + " in the root namespace"})
	}
	paths, err := record.List(stateDir)
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		var st State
		if err := record.Read(p, &st); err == nil && st.Subnet.IsValid() {
			used = append(used, usedPrefix{st.Subnet, "fabric " + st.Name})
		}
	}
	return used, nil
}

// defaultPool is searched, one /24 at a time, when no subnet is configured.
var defaultPool = netip.MustParsePrefix("172.31.0.0/16")

// chooseSubnet validates the requested subnet, or picks the first free /24 of
// defaultPool, so that the fabric overlaps nothing in used and fits the nodes
// (network, root address .1, one address per node, broadcast).
func chooseSubnet(requested netip.Prefix, nodes int, used []usedPrefix) (netip.Prefix, error) {
	if requested.IsValid() {
		requested = requested.Masked()
		if !requested.Addr().Is4() {
			return netip.Prefix{}, fmt.Errorf("subnet %s: only IPv4 fabrics are supported", requested)
		}
		if hostBits := 32 - requested.Bits(); nodes+3 > 1<<hostBits {
			return netip.Prefix{}, fmt.Errorf("subnet %s has no room for %d nodes plus the root address", requested, nodes)
		}
		for _, u := range used {
			if u.prefix.Overlaps(requested) {
				return netip.Prefix{}, fmt.Errorf("subnet %s overlaps %s: pick a free subnet", requested, u.source)
			}
		}
		return requested, nil
	}
	if nodes+3 > 256 {
		return netip.Prefix{}, fmt.Errorf("%d nodes do not fit a /24: configure a larger subnet", nodes)
	}
	base := defaultPool.Addr().As4()
	for k := 0; k < 256; k++ {
		candidate := netip.PrefixFrom(netip.AddrFrom4([4]byte{base[0], base[1], byte(k), 0}), 24)
		free := true
		for _, u := range used {
			if u.prefix.Overlaps(candidate) {
				free = false
				break
			}
		}
		if free {
			return candidate, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("every /24 of %s is in use by routes or other fabrics: configure a subnet", defaultPool)
}
