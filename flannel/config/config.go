// Package config parses and validates the flannel network configuration, the
// JSON document upstream flannel keeps at /coreos.com/network/config:
//
//	{"Network": "10.244.0.0/16", "SubnetLen": 24,
//	 "Backend": {"Type": "vxlan", "VNI": 1, "Port": 8472}}
//
// Keys upstream knows but hoist does not use (EnableIPv6, …) are ignored so
// an existing upstream document keeps working.
package config

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
)

// Backend types.
const (
	VXLAN  = "vxlan"
	HostGW = "host-gw"
)

// Defaults, as upstream flannel and the architecture brief fix them.
const (
	DefaultSubnetLen = 24
	DefaultVNI       = 1
	DefaultPort      = 8472
)

// Config is a validated network configuration.
type Config struct {
	Network   netip.Prefix // the cluster CIDR, masked
	SubnetLen int          // prefix length of each node's subnet
	SubnetMin netip.Addr   // first subnet that may be leased
	SubnetMax netip.Addr   // last subnet that may be leased
	Backend   Backend
	MTU       int // 0: derived from the public interface
}

// Backend selects the data path and its options.
type Backend struct {
	Type          string // VXLAN or HostGW
	VNI           int    // vxlan only
	Port          int    // vxlan only, UDP destination port
	GBP           bool   // vxlan only, group based policy extension
	DirectRouting bool   // vxlan only: plain routes to peers on the same L2
}

// wire is the JSON shape; strings so errors can quote what the operator wrote.
type wire struct {
	Network   string
	SubnetLen int
	SubnetMin string
	SubnetMax string
	MTU       int
	Backend   *struct {
		Type          string
		VNI           int
		Port          int
		GBP           bool
		DirectRouting bool
	}
}

// Parse decodes and validates a network configuration document.
func Parse(data []byte) (Config, error) {
	var w wire
	if err := json.Unmarshal(data, &w); err != nil {
		return Config{}, fmt.Errorf("network config: invalid JSON: %v", err)
	}
	var c Config
	if w.Network == "" {
		return c, fmt.Errorf(`network config: "Network" is missing: set the cluster CIDR, e.g. "Network": "10.244.0.0/16"`)
	}
	p, err := netip.ParsePrefix(w.Network)
	if err != nil || !p.Addr().Is4() {
		return c, fmt.Errorf("network config: Network %q is not an IPv4 CIDR such as 10.244.0.0/16", w.Network)
	}
	c.Network = p.Masked()
	c.SubnetLen = w.SubnetLen
	if c.SubnetLen == 0 {
		c.SubnetLen = DefaultSubnetLen
		if c.Network.Bits() >= DefaultSubnetLen {
			c.SubnetLen = c.Network.Bits() + 1 // upstream: a small network gets halves at least
		}
	}
	if c.SubnetLen <= c.Network.Bits() || c.SubnetLen > 30 {
		return c, fmt.Errorf("network config: SubnetLen %d must be longer than the Network's /%d and at most 30", c.SubnetLen, c.Network.Bits())
	}
	if c.SubnetMin, err = bound("SubnetMin", w.SubnetMin, c, first(c)); err != nil {
		return c, err
	}
	if c.SubnetMax, err = bound("SubnetMax", w.SubnetMax, c, last(c)); err != nil {
		return c, err
	}
	if c.SubnetMax.Less(c.SubnetMin) {
		return c, fmt.Errorf("network config: SubnetMin %s is after SubnetMax %s", c.SubnetMin, c.SubnetMax)
	}
	if w.MTU != 0 && (w.MTU < 576 || w.MTU > 65535) {
		return c, fmt.Errorf("network config: MTU %d out of range 576-65535 (leave it out to derive it from the interface)", w.MTU)
	}
	c.MTU = w.MTU
	c.Backend = Backend{Type: VXLAN, VNI: DefaultVNI, Port: DefaultPort}
	if b := w.Backend; b != nil {
		c.Backend = Backend{Type: strings.ToLower(b.Type), VNI: b.VNI, Port: b.Port, GBP: b.GBP, DirectRouting: b.DirectRouting}
		if c.Backend.Type == "" {
			c.Backend.Type = VXLAN
		}
	}
	return c, validateBackend(&c.Backend)
}

func validateBackend(b *Backend) error {
	switch b.Type {
	case VXLAN:
		if b.VNI == 0 {
			b.VNI = DefaultVNI
		}
		if b.Port == 0 {
			b.Port = DefaultPort
		}
		if b.VNI < 0 || b.VNI > 1<<24-1 {
			return fmt.Errorf("network config: Backend.VNI %d out of range 1-16777215", b.VNI)
		}
		if b.Port < 1 || b.Port > 65535 {
			return fmt.Errorf("network config: Backend.Port %d out of range 1-65535", b.Port)
		}
	case HostGW:
		if b.VNI != 0 || b.Port != 0 || b.GBP || b.DirectRouting {
			return fmt.Errorf("network config: Backend.VNI/Port/GBP/DirectRouting are vxlan options; remove them for Type %q", HostGW)
		}
	default:
		return fmt.Errorf("network config: Backend.Type %q is not supported: use %q or %q", b.Type, VXLAN, HostGW)
	}
	return nil
}

// bound parses SubnetMin/SubnetMax (default def) and checks it is a subnet
// boundary inside the network.
func bound(name, s string, c Config, def netip.Addr) (netip.Addr, error) {
	if s == "" {
		return def, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return a, fmt.Errorf("network config: %s %q is not an IPv4 address", name, s)
	}
	if !c.Network.Contains(a) {
		return a, fmt.Errorf("network config: %s %s is outside Network %s", name, a, c.Network)
	}
	if netip.PrefixFrom(a, c.SubnetLen).Masked().Addr() != a {
		return a, fmt.Errorf("network config: %s %s is not the start of a /%d subnet", name, a, c.SubnetLen)
	}
	return a, nil
}

// first is the network's first subnet; upstream skips it (its .0 is the
// network address), so the default SubnetMin is the second.
func first(c Config) netip.Addr {
	return nthSubnet(c.Network, c.SubnetLen, 1)
}

// last is the network's last subnet.
func last(c Config) netip.Addr {
	n := uint32(1)<<(c.SubnetLen-c.Network.Bits()) - 1
	return nthSubnet(c.Network, c.SubnetLen, n)
}

func nthSubnet(network netip.Prefix, subnetLen int, n uint32) netip.Addr {
	b := network.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += n << (32 - subnetLen)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Marshal renders c in upstream's JSON shape, e.g. to seed etcd.
func (c Config) Marshal() []byte {
	w := map[string]any{
		"Network":   c.Network.String(),
		"SubnetLen": c.SubnetLen,
		"SubnetMin": c.SubnetMin.String(),
		"SubnetMax": c.SubnetMax.String(),
	}
	if c.MTU != 0 {
		w["MTU"] = c.MTU
	}
	b := map[string]any{"Type": c.Backend.Type}
	if c.Backend.Type == VXLAN {
		b["VNI"], b["Port"], b["GBP"], b["DirectRouting"] = c.Backend.VNI, c.Backend.Port, c.Backend.GBP, c.Backend.DirectRouting
	}
	w["Backend"] = b
	out, _ := json.Marshal(w) // only strings, ints and bools: cannot fail
	return out
}

// Options are the network config as command-line flags give it (kube mode
// has no etcd document); zero values take Parse's defaults.
type Options struct {
	Network     string // cluster CIDR
	BackendType string
	VNI, Port   int // vxlan only
	MTU         int
}

// FromOptions validates o exactly like the JSON document it stands for.
func FromOptions(o Options) (Config, error) {
	w := map[string]any{"Network": o.Network}
	if o.MTU != 0 {
		w["MTU"] = o.MTU
	}
	b := map[string]any{"Type": o.BackendType}
	if o.VNI != 0 {
		b["VNI"] = o.VNI
	}
	if o.Port != 0 {
		b["Port"] = o.Port
	}
	w["Backend"] = b
	data, _ := json.Marshal(w) // strings and ints only: cannot fail
	return Parse(data)
}
