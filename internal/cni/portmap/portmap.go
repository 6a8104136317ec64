// Package portmap is hoist's hostPort plugin: for each port mapping of a
// container it writes one DNAT chain and one masquerade chain (nat table),
// named after the container attachment and tagged as hoist's, in one
// iptables-restore batch per IP family. Chains are removed on DEL and
// orphans by GC; stale UDP conntrack entries of mapped ports are flushed.
// A container without port mappings costs nothing: no iptables call at all.
package portmap

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hoist-project/hoist/internal/cni/cnierr"
	"github.com/hoist-project/hoist/internal/cni/ipam"
	"github.com/hoist-project/hoist/internal/cni/iptables"
	"github.com/hoist-project/hoist/internal/cni/netutil"
)

const (
	dnatPrefix = "HOIST-DN-"
	masqPrefix = "HOIST-SN-"
)

// Mapping is one entry of the "portMappings" capability.
type Mapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Conf is the portmap config.
type Conf struct {
	Name string `json:"name"`
	// SNAT masquerades hairpin traffic (a container reaching its own hostPort); default true.
	SNAT *bool `json:"snat,omitempty"`
	// AllowLocalhost makes hostPorts reachable on 127.0.0.1 of the host
	// (sets route_localnet on the bridge); off unless explicitly enabled.
	AllowLocalhost bool `json:"allowLocalhost,omitempty"`
	RuntimeConfig  struct {
		PortMappings []Mapping `json:"portMappings,omitempty"`
	} `json:"runtimeConfig,omitempty"`
}

// ParseConf decodes and validates the config.
func ParseConf(stdin []byte) (*Conf, error) {
	c := &Conf{}
	if err := json.Unmarshal(stdin, c); err != nil {
		return nil, cnierr.Decoding(err)
	}
	for i := range c.RuntimeConfig.PortMappings {
		m := &c.RuntimeConfig.PortMappings[i]
		m.Protocol = strings.ToLower(m.Protocol)
		if m.Protocol == "" {
			m.Protocol = "tcp"
		}
		switch {
		case m.HostPort < 1 || m.HostPort > 65535 || m.ContainerPort < 1 || m.ContainerPort > 65535:
			return nil, cnierr.InvalidConfig("network %q: portMappings[%d]: ports must be 1-65535 (hostPort %d, containerPort %d)", c.Name, i, m.HostPort, m.ContainerPort)
		case m.Protocol != "tcp" && m.Protocol != "udp" && m.Protocol != "sctp":
			return nil, cnierr.InvalidConfig("network %q: portMappings[%d]: protocol %q is not tcp, udp or sctp", c.Name, i, m.Protocol)
		case m.HostIP != "" && net.ParseIP(m.HostIP) == nil:
			return nil, cnierr.InvalidConfig("network %q: portMappings[%d]: hostIP %q is not an IP address", c.Name, i, m.HostIP)
		}
	}
	return c, nil
}

func (c *Conf) snat() bool { return c.SNAT == nil || *c.SNAT }

// Plugin runs the portmap commands over an iptables Runner.
type Plugin struct{ IPTables iptables.Runner }

func (p Plugin) manager() iptables.Manager {
	r := p.IPTables
	if r == nil {
		r = iptables.Exec{}
	}
	return iptables.Manager{Runner: r, Table: "nat", Prefixes: []string{dnatPrefix, masqPrefix}}
}

func owner(c *Conf, args *skel.CmdArgs) iptables.Owner {
	return iptables.Owner{Plugin: "portmap", Network: c.Name, ContainerID: args.ContainerID, IfName: args.IfName}
}

// Add installs the mappings for the container addresses in prev.
func (p Plugin) Add(args *skel.CmdArgs, c *Conf, prev *current.Result) error {
	if len(c.RuntimeConfig.PortMappings) == 0 {
		return nil
	}
	if prev == nil {
		return cnierr.InvalidConfig("network %q: portmap must be chained after a plugin that returns a prevResult", c.Name)
	}
	o := owner(c, args)
	done := []iptables.Family{}
	for _, fam := range []iptables.Family{iptables.IPv4, iptables.IPv6} {
		ip := containerIP(prev, fam)
		if ip == nil {
			continue
		}
		if fam == iptables.IPv4 && c.AllowLocalhost {
			if br := hostInterface(prev); br != "" {
				if err := netutil.Sysctl("net/ipv4/conf/"+br+"/route_localnet", "1"); err != nil {
					return cnierr.Internal("allowLocalhost", err)
				}
			}
		}
		if err := p.manager().Add(fam, o, Chains(o, c, fam, ip)); err != nil {
			for _, f := range done {
				_ = p.manager().Remove(f, o)
			}
			return cnierr.Internal("portmap", err)
		}
		done = append(done, fam)
	}
	return flushUDP(c.RuntimeConfig.PortMappings)
}

// Chains renders the DNAT and masquerade chains of one family (pure: unit-testable).
func Chains(o iptables.Owner, c *Conf, fam iptables.Family, ip net.IP) []iptables.Chain {
	dnat := iptables.Chain{Name: o.ChainName(dnatPrefix)}
	masq := iptables.Chain{Name: o.ChainName(masqPrefix)}
	bits, loop := 32, "127.0.0.0/8"
	if fam == iptables.IPv6 {
		bits, loop = 128, "::1/128"
	}
	host := (&net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}).String()
	for _, m := range c.RuntimeConfig.PortMappings {
		match := "-p " + m.Protocol
		if m.HostIP != "" {
			hip := net.ParseIP(m.HostIP)
			if (hip.To4() != nil) != (fam == iptables.IPv4) {
				continue // a hostIP of the other family
			}
			if !hip.IsUnspecified() {
				match += " -d " + hip.String()
			}
		}
		port := strconv.Itoa(m.ContainerPort)
		dnat.Rules = append(dnat.Rules, fmt.Sprintf("%s -m %s --dport %d -j DNAT --to-destination %s",
			match, m.Protocol, m.HostPort, net.JoinHostPort(ip.String(), port)))
		if c.snat() {
			masq.Rules = append(masq.Rules, fmt.Sprintf("-s %s -p %s -m %s --dport %s -j MASQUERADE", host, m.Protocol, m.Protocol, port))
			if c.AllowLocalhost && fam == iptables.IPv4 {
				masq.Rules = append(masq.Rules, fmt.Sprintf("-s %s -p %s -m %s --dport %s -j MASQUERADE", loop, m.Protocol, m.Protocol, port))
			}
		}
	}
	local := "-m addrtype --dst-type LOCAL"
	outMatch := local
	if !c.AllowLocalhost || fam == iptables.IPv6 { // IPv6 cannot route ::1 to a container at all
		outMatch = "! -d " + loop + " " + local
	}
	dnat.Jumps = []iptables.Jump{{From: "PREROUTING", Match: local}, {From: "OUTPUT", Match: outMatch}}
	out := []iptables.Chain{dnat}
	if len(masq.Rules) > 0 {
		masq.Jumps = []iptables.Jump{{From: "POSTROUTING", Match: "-d " + host, First: true}}
		out = append(out, masq)
	}
	return out
}

// containerIP is the first address of the family on an interface inside the sandbox.
func containerIP(res *current.Result, fam iptables.Family) net.IP {
	for _, ipc := range res.IPs {
		if (ipc.Address.IP.To4() != nil) != (fam == iptables.IPv4) {
			continue
		}
		if ipc.Interface != nil && *ipc.Interface >= 0 && *ipc.Interface < len(res.Interfaces) && res.Interfaces[*ipc.Interface].Sandbox == "" {
			continue
		}
		return ipc.Address.IP
	}
	return nil
}

func containerIPOrNil(res *current.Result, fam iptables.Family) net.IP {
	if res == nil {
		return nil
	}
	return containerIP(res, fam)
}

// hostInterface is the first host-side interface (the bridge for bridge networks).
func hostInterface(res *current.Result) string {
	for _, i := range res.Interfaces {
		if i.Sandbox == "" {
			return i.Name
		}
	}
	return ""
}

// flushUDP drops conntrack entries towards mapped UDP host ports, which
// would otherwise keep steering a flow to the previous container.
func flushUDP(ms []Mapping) error {
	var errs []error
	for _, m := range ms {
		if m.Protocol != "udp" {
			continue
		}
		for _, fam := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
			f := &netlink.ConntrackFilter{}
			if err := f.AddProtocol(unix.IPPROTO_UDP); err != nil {
				return err
			}
			if err := f.AddPort(netlink.ConntrackOrigDstPort, uint16(m.HostPort)); err != nil {
				return err
			}
			if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, fam, f); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("flush UDP conntrack for port %d: %w", m.HostPort, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return cnierr.Internal("portmap", err)
	}
	return nil
}

// Del removes the container's chains (if any) and flushes its UDP conntrack
// entries; prev (may be nil) limits the work to its IP families.
func (p Plugin) Del(args *skel.CmdArgs, c *Conf, prev *current.Result) error {
	if len(c.RuntimeConfig.PortMappings) == 0 {
		return nil
	}
	o := owner(c, args)
	var errs []error
	for _, fam := range iptables.Families(prev) {
		if ip := containerIPOrNil(prev, fam); ip != nil {
			errs = append(errs, p.manager().RemoveKnown(fam, o, Chains(o, c, fam, ip)))
		} else {
			errs = append(errs, p.manager().Remove(fam, o))
		}
	}
	errs = append(errs, flushUDP(c.RuntimeConfig.PortMappings))
	if err := errors.Join(errs...); err != nil {
		return cnierr.Internal("portmap DEL", err)
	}
	return nil
}

// Check verifies that the DNAT chain of each family with an address exists.
func (p Plugin) Check(args *skel.CmdArgs, c *Conf, prev *current.Result) error {
	if len(c.RuntimeConfig.PortMappings) == 0 {
		return nil
	}
	if prev == nil {
		return cnierr.InvalidConfig("network %q: CHECK needs the prevResult", c.Name)
	}
	o := owner(c, args)
	for _, fam := range []iptables.Family{iptables.IPv4, iptables.IPv6} {
		if containerIP(prev, fam) == nil {
			continue
		}
		data, err := p.manager().Runner.Save(fam, "nat")
		if err != nil {
			return cnierr.Internal("portmap CHECK", err)
		}
		t := iptables.ParseSave(data)
		name := o.ChainName(dnatPrefix)
		if !t.Chains[name] || len(t.JumpsTo(name)) == 0 {
			return cnierr.Internal("portmap CHECK", fmt.Errorf("chain %s for container %s is missing (IPv%d)", name, args.ContainerID, fam))
		}
	}
	return nil
}

// GC removes the chains of this network's attachments that are not valid any more.
func (p Plugin) GC(args *skel.CmdArgs, c *Conf) error {
	keep, err := ipam.DecodeValidAttachments(args.StdinData)
	if err != nil {
		return err
	}
	var errs []error
	for _, fam := range []iptables.Family{iptables.IPv4, iptables.IPv6} {
		_, err := p.manager().GC(fam, "portmap", c.Name, func(o iptables.Owner) bool {
			return keep.Has(o.ContainerID, o.IfName)
		})
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return cnierr.Internal("portmap GC", err)
	}
	return nil
}
