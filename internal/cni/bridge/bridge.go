package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hoist-project/hoist/internal/cni/cnierr"
	"github.com/hoist-project/hoist/internal/cni/iptables"
	"github.com/hoist-project/hoist/internal/cni/netutil"
	"github.com/hoist-project/hoist/internal/nsutil"
)

// masqPrefix names the per-attachment masquerade chains (nat table).
const masqPrefix = "HOIST-MASQ-"

// Plugin runs the bridge commands. The zero value uses host-local in process
// for "host-local" IPAM, exec delegation otherwise, and the system iptables.
type Plugin struct {
	IPAMFor  func(ipamType string) IPAM
	IPTables iptables.Runner
}

func (p Plugin) ipam(t string) IPAM {
	if p.IPAMFor != nil {
		return p.IPAMFor(t)
	}
	return IPAMFor(t)
}

func (p Plugin) masq() iptables.Manager {
	r := p.IPTables
	if r == nil {
		r = iptables.Exec{}
	}
	return iptables.Manager{Runner: r, Table: "nat", Prefixes: []string{masqPrefix}}
}

// undo is a stack of rollback steps for a failed ADD.
type undo []func()

func (u *undo) push(f func()) { *u = append(*u, f) }
func (u undo) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

// Add attaches the container and returns the result. If any step fails,
// everything this call created (lease, veth, rules) is removed again.
func (p Plugin) Add(ctx context.Context, args *skel.CmdArgs, conf *NetConf) (res *current.Result, err error) {
	var rollback undo
	defer func() {
		if err != nil {
			rollback.run()
		}
	}()
	im := p.ipam(conf.IPAM.Type)
	res, err = im.Add(ctx, args)
	if err != nil {
		return nil, err
	}
	rollback.push(func() { _ = im.Del(context.WithoutCancel(ctx), args) })
	if len(res.IPs) == 0 {
		return nil, cnierr.InvalidConfig("network %q: IPAM %s returned no addresses", conf.Name, conf.IPAM.Type)
	}
	// The lease comes first: the bridge's MAC derives from the gateway.
	var gws []net.IP
	for _, ipc := range res.IPs {
		gws = append(gws, ipc.Gateway)
	}
	br, err := ensureBridge(conf, stableMAC(macKey(conf.BrName, gws)))
	if err != nil {
		return nil, cnierr.Internal("bridge "+conf.BrName, err)
	}

	hostName := netutil.HostVethName(args.ContainerID, args.IfName)
	if old, err := netlink.LinkByName(hostName); err == nil {
		_ = netlink.LinkDel(old) // left by an earlier ADD of this attachment that crashed
	}
	host, err := netutil.CreateVeth(hostName, args.IfName, conf.MTU, args.Netns)
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, cnierr.InvalidConfig("container %s already has an interface %q", args.ContainerID, args.IfName)
		}
		return nil, cnierr.Internal("veth", err)
	}
	rollback.push(func() { _ = netlink.LinkDel(host) })
	if err := attachHost(host, br, conf); err != nil {
		return nil, cnierr.Internal("attach "+hostName+" to "+conf.BrName, err)
	}
	if conf.IsGateway {
		if err := setupGateway(br, res); err != nil {
			return nil, cnierr.Internal("gateway on "+conf.BrName, err)
		}
	}
	for _, ipc := range res.IPs {
		ipc.Interface = current.Int(2)
	}
	if conf.IsDefaultGW {
		addDefaultRoutes(res)
	}
	var cont netlink.Link
	err = nsutil.Do(args.Netns, func() error {
		var err error
		cont, err = configureContainer(args.IfName, res)
		return err
	})
	if err != nil {
		return nil, cnierr.Internal("configure "+args.IfName+" in "+args.Netns, err)
	}
	if conf.IPMasq {
		owner := p.owner(conf, args)
		for _, fam := range iptables.Families(res) {
			if err := p.masq().Add(fam, owner, []iptables.Chain{masqChain(owner, res, fam)}); err != nil {
				return nil, cnierr.Internal("ipMasq", err)
			}
			rollback.push(func() { _ = p.masq().Remove(fam, owner) })
		}
	}
	res.Interfaces = []*current.Interface{netutil.Interface(br, ""), netutil.Interface(host, ""), netutil.Interface(cont, args.Netns)}
	return res, nil
}

func (p Plugin) owner(conf *NetConf, args *skel.CmdArgs) iptables.Owner {
	return iptables.Owner{Plugin: "bridge", Network: conf.Name, ContainerID: args.ContainerID, IfName: args.IfName}
}

// masqChain masquerades traffic from the container's address that leaves its
// own subnet (multicast excluded), entered from POSTROUTING.
func masqChain(owner iptables.Owner, res *current.Result, fam iptables.Family) iptables.Chain {
	c := iptables.Chain{Name: owner.ChainName(masqPrefix)}
	mcast := "224.0.0.0/4"
	if fam == iptables.IPv6 {
		mcast = "ff00::/8"
	}
	for _, ipc := range res.IPs {
		if (ipc.Address.IP.To4() != nil) != (fam == iptables.IPv4) {
			continue
		}
		subnet := net.IPNet{IP: ipc.Address.IP.Mask(ipc.Address.Mask), Mask: ipc.Address.Mask}
		bits := 32
		if fam == iptables.IPv6 {
			bits = 128
		}
		host := net.IPNet{IP: ipc.Address.IP, Mask: net.CIDRMask(bits, bits)}
		c.Rules = append(c.Rules, "-d "+subnet.String()+" -j ACCEPT")
		c.Jumps = append(c.Jumps, iptables.Jump{From: "POSTROUTING", Match: "-s " + host.String()})
	}
	c.Rules = append(c.Rules, "! -d "+mcast+" -j MASQUERADE")
	return c
}

// ensureBridge finds or creates the bridge, up, with an explicitly set MAC
// (mac when the plugin creates it; see fixMAC for an existing one).
func ensureBridge(conf *NetConf, mac net.HardwareAddr) (netlink.Link, error) {
	br, err := netlink.LinkByName(conf.BrName)
	if err != nil {
		if !netutil.IsNotFound(err) {
			return nil, err
		}
		la := netlink.NewLinkAttrs()
		la.Name, la.MTU, la.HardwareAddr = conf.BrName, conf.MTU, mac
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("create: %w", err)
		}
		if br, err = netlink.LinkByName(conf.BrName); err != nil {
			return nil, err
		}
	}
	if _, ok := br.(*netlink.Bridge); !ok {
		return nil, fmt.Errorf("%q exists and is a %s, not a bridge", conf.BrName, br.Type())
	}
	if br, err = fixMAC(br, mac); err != nil {
		return nil, err
	}
	if conf.PromiscMode && br.Attrs().Promisc == 0 {
		if err := netlink.SetPromiscOn(br); err != nil {
			return nil, fmt.Errorf("promisc: %w", err)
		}
	}
	if br.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(br); err != nil {
			return nil, fmt.Errorf("set up: %w", err)
		}
	}
	return br, nil
}

func attachHost(host, br netlink.Link, conf *NetConf) error {
	if err := netlink.LinkSetMaster(host, br); err != nil {
		return err
	}
	if conf.HairpinMode {
		if err := netlink.LinkSetHairpin(host, true); err != nil {
			return fmt.Errorf("hairpin: %w", err)
		}
	}
	return netlink.LinkSetUp(host)
}

// setupGateway puts each family's gateway address on the bridge and turns on forwarding.
func setupGateway(br netlink.Link, res *current.Result) error {
	for _, ipc := range res.IPs {
		if ipc.Gateway == nil {
			continue
		}
		if err := netutil.AddAddr(br, net.IPNet{IP: ipc.Gateway, Mask: ipc.Address.Mask}); err != nil {
			return err
		}
		key := "net/ipv4/ip_forward"
		if ipc.Address.IP.To4() == nil {
			key = "net/ipv6/conf/all/forwarding"
		}
		if err := netutil.Sysctl(key, "1"); err != nil {
			return err
		}
	}
	return nil
}

func addDefaultRoutes(res *current.Result) {
	for _, ipc := range res.IPs {
		if ipc.Gateway == nil {
			continue
		}
		dst := netutil.DefaultRoute(ipc.Address.IP.To4() != nil)
		dup := false
		for _, r := range res.Routes {
			dup = dup || r.Dst.String() == dst.String()
		}
		if !dup {
			res.Routes = append(res.Routes, &types.Route{Dst: *dst, GW: ipc.Gateway})
		}
	}
}

// configureContainer runs inside the container netns: addresses (no DAD),
// link up, then routes (a route without a gateway uses its family's gateway).
func configureContainer(ifname string, res *current.Result) (netlink.Link, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, err
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		// No DAD for the kernel's own (link-local) addresses either: usable at once.
		_ = netutil.Sysctl("net/ipv6/conf/"+ifname+"/accept_dad", "0")
	}
	for _, ipc := range res.IPs {
		if err := netutil.AddAddr(link, ipc.Address); err != nil {
			return nil, err
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, err
	}
	for _, r := range res.Routes {
		gw := r.GW
		if gw == nil {
			gw = gatewayFor(res, r.Dst.IP.To4() != nil)
		}
		dst := r.Dst
		if err := netutil.AddRoute(link, &dst, gw); err != nil {
			return nil, err
		}
	}
	return link, nil
}

func gatewayFor(res *current.Result, v4 bool) net.IP {
	for _, ipc := range res.IPs {
		if (ipc.Address.IP.To4() != nil) == v4 && ipc.Gateway != nil {
			return ipc.Gateway
		}
	}
	return nil
}
