package subnet

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/hoist-project/hoist/flannel/config"
)

// Pick returns a subnet of cfg's network for a node, given the subnets other
// nodes hold. prev (this node's earlier subnet) wins when it is still usable;
// otherwise a free subnet is chosen at random among the first free ones, so
// nodes starting together rarely race for the same key. rnd may be nil.
func Pick(cfg config.Config, taken map[netip.Prefix]bool, prev netip.Prefix, rnd *rand.Rand) (netip.Prefix, error) {
	if Usable(cfg, prev) && !taken[prev] {
		return prev, nil
	}
	const window = 100 // upstream picks among the first 100 free subnets too
	var free []netip.Prefix
	for a := cfg.SubnetMin; ; {
		p := netip.PrefixFrom(a, cfg.SubnetLen)
		if !taken[p] {
			free = append(free, p)
			if len(free) == window {
				break
			}
		}
		if a == cfg.SubnetMax {
			break
		}
		a = next(p)
	}
	if len(free) == 0 {
		return netip.Prefix{}, fmt.Errorf("no free /%d subnet left in %s between %s and %s (%d taken): widen Network or remove stale leases", cfg.SubnetLen, cfg.Network, cfg.SubnetMin, cfg.SubnetMax, len(taken))
	}
	if rnd == nil {
		return free[rand.IntN(len(free))], nil
	}
	return free[rnd.IntN(len(free))], nil
}

// Usable reports whether p is a subnet this network may lease.
func Usable(cfg config.Config, p netip.Prefix) bool {
	return p.IsValid() && p.Bits() == cfg.SubnetLen && p.Masked() == p && cfg.Network.Contains(p.Addr()) &&
		!p.Addr().Less(cfg.SubnetMin) && !cfg.SubnetMax.Less(p.Addr())
}

// next is the first address after p.
func next(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += 1 << (32 - p.Bits())
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
