package ipam

import (
	"encoding/json"
	"fmt"
	"math/big"
	"net"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/hoist-project/hoist/internal/cni/cnierr"
)

// DefaultDataDir is where leases live unless the config sets dataDir; it is
// upstream host-local's directory, so operators find leases where they expect.
const DefaultDataDir = "/var/lib/cni/networks"

// Range is one contiguous allocatable block inside a subnet.
type Range struct {
	Subnet     types.IPNet `json:"subnet"`
	RangeStart net.IP      `json:"rangeStart,omitempty"`
	RangeEnd   net.IP      `json:"rangeEnd,omitempty"`
	Gateway    net.IP      `json:"gateway,omitempty"`
}

// RangeSet is a list of ranges of one IP family; an ADD takes one address
// from every range set (dual stack = two sets).
type RangeSet []Range

// Config is host-local's "ipam" section.
type Config struct {
	Type    string         `json:"type"`
	Ranges  []RangeSet     `json:"ranges,omitempty"`
	Routes  []*types.Route `json:"routes,omitempty"`
	DataDir string         `json:"dataDir,omitempty"`

	// The single-range shorthand (subnet, rangeStart, ...) upstream accepts.
	Subnet     string `json:"subnet,omitempty"`
	RangeStart net.IP `json:"rangeStart,omitempty"`
	RangeEnd   net.IP `json:"rangeEnd,omitempty"`
	Gateway    net.IP `json:"gateway,omitempty"`
}

// ParseConfig reads the "ipam" section of a network config and validates and
// canonicalizes it. network is the network's name (the lease directory).
func ParseConfig(stdin []byte) (*Config, string, error) {
	var nc struct {
		Name string  `json:"name"`
		IPAM *Config `json:"ipam"`
	}
	if err := json.Unmarshal(stdin, &nc); err != nil {
		return nil, "", cnierr.Decoding(err)
	}
	if nc.IPAM == nil {
		return nil, "", cnierr.InvalidConfig("network %q: missing \"ipam\" section", nc.Name)
	}
	if err := nc.IPAM.Canonicalize(); err != nil {
		return nil, "", cnierr.InvalidConfig("network %q: ipam: %v", nc.Name, err)
	}
	return nc.IPAM, nc.Name, nil
}

// Canonicalize folds the shorthand into Ranges, fills defaults and checks
// every range: inside its subnet, ordered, one family per set, no overlaps.
func (c *Config) Canonicalize() error {
	if c.Subnet != "" {
		sn, err := types.ParseCIDR(c.Subnet)
		if err != nil {
			return fmt.Errorf("subnet %q is not a CIDR (want e.g. 10.22.0.0/16)", c.Subnet)
		}
		c.Ranges = append([]RangeSet{{{Subnet: types.IPNet(*sn), RangeStart: c.RangeStart, RangeEnd: c.RangeEnd, Gateway: c.Gateway}}}, c.Ranges...)
		c.Subnet, c.RangeStart, c.RangeEnd, c.Gateway = "", nil, nil, nil
	}
	if len(c.Ranges) == 0 {
		return fmt.Errorf("no address ranges: set \"subnet\" or \"ranges\"")
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	var all []*Range
	for i, set := range c.Ranges {
		if len(set) == 0 {
			return fmt.Errorf("ranges[%d] is empty", i)
		}
		for j := range set {
			r := &set[j]
			if err := r.canonicalize(); err != nil {
				return fmt.Errorf("ranges[%d][%d]: %v", i, j, err)
			}
			if (r.Subnet.IP.To4() == nil) != (set[0].Subnet.IP.To4() == nil) {
				return fmt.Errorf("ranges[%d] mixes IPv4 and IPv6; use one range set per family", i)
			}
			for _, o := range all {
				if r.overlaps(o) {
					return fmt.Errorf("range %s overlaps range %s", r, o)
				}
			}
			all = append(all, r)
		}
	}
	return nil
}

func (r *Range) canonicalize() error {
	sn := net.IPNet(r.Subnet)
	if sn.IP == nil {
		return fmt.Errorf("missing subnet")
	}
	ones, bits := sn.Mask.Size()
	if bits-ones < 2 {
		return fmt.Errorf("subnet %s is too small (needs at least a /%d)", sn.String(), bits-2)
	}
	if v4 := sn.IP.To4(); v4 != nil {
		sn.IP = v4
	}
	sn.IP = sn.IP.Mask(sn.Mask)
	r.Subnet = types.IPNet(sn)
	first := nextIP(sn.IP)
	last := lastIP(&sn)
	if sn.IP.To4() != nil {
		last = prevIP(last) // skip the broadcast address
	}
	norm := func(name string, ip net.IP, def net.IP) (net.IP, error) {
		if ip == nil {
			return def, nil
		}
		if v4 := ip.To4(); v4 != nil && len(sn.IP) == net.IPv4len {
			ip = v4
		}
		if !sn.Contains(ip) {
			return nil, fmt.Errorf("%s %s is outside subnet %s", name, ip, sn.String())
		}
		return ip, nil
	}
	var err error
	if r.Gateway, err = norm("gateway", r.Gateway, first); err != nil {
		return err
	}
	if r.RangeStart, err = norm("rangeStart", r.RangeStart, first); err != nil {
		return err
	}
	if r.RangeEnd, err = norm("rangeEnd", r.RangeEnd, last); err != nil {
		return err
	}
	if cmpIP(r.RangeStart, r.RangeEnd) > 0 {
		return fmt.Errorf("rangeStart %s is after rangeEnd %s", r.RangeStart, r.RangeEnd)
	}
	return nil
}

func (r *Range) overlaps(o *Range) bool {
	if len(r.RangeStart) != len(o.RangeStart) {
		return false
	}
	return cmpIP(r.RangeStart, o.RangeEnd) <= 0 && cmpIP(o.RangeStart, r.RangeEnd) <= 0
}

// Contains reports whether ip is allocatable in this range.
func (r *Range) Contains(ip net.IP) bool {
	if v4 := ip.To4(); v4 != nil && len(r.RangeStart) == net.IPv4len {
		ip = v4
	}
	return len(ip) == len(r.RangeStart) && cmpIP(ip, r.RangeStart) >= 0 && cmpIP(ip, r.RangeEnd) <= 0
}

// Size is the number of addresses in the range, the gateway excluded.
func (r *Range) Size() uint64 {
	n := new(big.Int).Sub(new(big.Int).SetBytes(r.RangeEnd), new(big.Int).SetBytes(r.RangeStart))
	n.Add(n, big.NewInt(1))
	if r.Contains(r.Gateway) {
		n.Sub(n, big.NewInt(1))
	}
	if !n.IsUint64() {
		return ^uint64(0)
	}
	return n.Uint64()
}

func (r *Range) String() string {
	sn := net.IPNet(r.Subnet)
	return fmt.Sprintf("%s (%s-%s)", sn.String(), r.RangeStart, r.RangeEnd)
}

func cmpIP(a, b net.IP) int { return new(big.Int).SetBytes(a).Cmp(new(big.Int).SetBytes(b)) }

func nextIP(ip net.IP) net.IP {
	out := append(net.IP(nil), ip...)
	for i := len(out) - 1; i >= 0; i-- {
		out[i]++
		if out[i] != 0 {
			break
		}
	}
	return out
}

func prevIP(ip net.IP) net.IP {
	out := append(net.IP(nil), ip...)
	for i := len(out) - 1; i >= 0; i-- {
		out[i]--
		if out[i] != 0xff {
			break
		}
	}
	return out
}

func lastIP(sn *net.IPNet) net.IP {
	out := make(net.IP, len(sn.IP))
	for i := range out {
		out[i] = sn.IP[i] | ^sn.Mask[i]
	}
	return out
}
