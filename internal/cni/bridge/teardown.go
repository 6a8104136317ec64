package bridge

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hoist-project/hoist/internal/cni/cnierr"
	"github.com/hoist-project/hoist/internal/cni/ipam"
	"github.com/hoist-project/hoist/internal/cni/iptables"
	"github.com/hoist-project/hoist/internal/cni/netutil"
	"github.com/hoist-project/hoist/internal/nsutil"
)

// Del detaches the container. It always releases the address, and a missing
// namespace, interface, rule or lease is not an error, so DEL can be repeated.
// prev (the ADD's result, may be nil) limits rule cleanup to its IP families.
func (p Plugin) Del(ctx context.Context, args *skel.CmdArgs, conf *NetConf, prev *current.Result) error {
	var errs []error
	if err := p.ipam(conf.IPAM.Type).Del(ctx, args); err != nil {
		errs = append(errs, err)
	}
	if args.Netns != "" {
		err := nsutil.Do(args.Netns, func() error {
			link, err := netlink.LinkByName(args.IfName)
			if err != nil {
				if netutil.IsNotFound(err) {
					return nil
				}
				return err
			}
			return netlink.LinkDel(link)
		})
		if err != nil && !netnsGone(err) {
			errs = append(errs, fmt.Errorf("delete %s in %s: %w", args.IfName, args.Netns, err))
		}
	}
	// The host end normally dies with its peer; remove it if it outlived it.
	if host, err := netlink.LinkByName(netutil.HostVethName(args.ContainerID, args.IfName)); err == nil {
		if err := netlink.LinkDel(host); err != nil && !netutil.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete host veth: %w", err))
		}
	}
	if conf.IPMasq {
		owner := p.owner(conf, args)
		for _, fam := range iptables.Families(prev) {
			var err error
			if prev != nil {
				err = p.masq().RemoveKnown(fam, owner, []iptables.Chain{masqChain(owner, prev, fam)})
			} else {
				err = p.masq().Remove(fam, owner)
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return cnierr.Internal("bridge DEL", err)
	}
	return nil
}

// netnsGone reports whether a namespace error means it no longer exists.
func netnsGone(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.EINVAL)
}

// Check verifies the attachment described by prevResult: the lease, the
// container interface with its addresses and routes, and the host veth on the bridge.
func (p Plugin) Check(ctx context.Context, args *skel.CmdArgs, conf *NetConf, prev *current.Result) error {
	if prev == nil {
		return cnierr.InvalidConfig("network %q: CHECK needs the prevResult of the ADD", conf.Name)
	}
	if err := p.ipam(conf.IPAM.Type).Check(ctx, args); err != nil {
		return err
	}
	idx := -1
	for i, itf := range prev.Interfaces {
		if itf.Name == args.IfName && itf.Sandbox != "" {
			idx = i
		}
	}
	if idx < 0 {
		return cnierr.InvalidConfig("prevResult has no interface %q inside the container", args.IfName)
	}
	err := nsutil.Do(args.Netns, func() error {
		link, err := netlink.LinkByName(args.IfName)
		if err != nil {
			return fmt.Errorf("interface %s: %w", args.IfName, err)
		}
		if mac := prev.Interfaces[idx].Mac; mac != "" && link.Attrs().HardwareAddr.String() != mac {
			return fmt.Errorf("interface %s has MAC %s, prevResult says %s", args.IfName, link.Attrs().HardwareAddr, mac)
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, ipc := range prev.IPs {
			if ipc.Interface != nil && *ipc.Interface != idx {
				continue
			}
			found := false
			for _, a := range addrs {
				found = found || a.IPNet.String() == ipc.Address.String()
			}
			if !found {
				return fmt.Errorf("address %s is missing from %s", ipc.Address.String(), args.IfName)
			}
		}
		for _, r := range prev.Routes {
			dst := r.Dst
			ok, err := netutil.HasRoute(link, &dst, r.GW)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("route %s via %s is missing in the container", dst.String(), r.GW)
			}
		}
		return nil
	})
	if err != nil {
		return cnierr.Internal("CHECK "+args.ContainerID, err)
	}
	host, err := netlink.LinkByName(netutil.HostVethName(args.ContainerID, args.IfName))
	if err != nil {
		return cnierr.Internal("CHECK host veth", err)
	}
	br, err := netlink.LinkByName(conf.BrName)
	if err != nil {
		return cnierr.Internal("CHECK bridge", err)
	}
	if host.Attrs().MasterIndex != br.Attrs().Index {
		return cnierr.Internal("CHECK", fmt.Errorf("host veth %s is not attached to %s", host.Attrs().Name, conf.BrName))
	}
	return nil
}

// GC releases leases and masquerade chains of attachments the runtime no longer has.
func (p Plugin) GC(ctx context.Context, args *skel.CmdArgs, conf *NetConf) error {
	keep, err := ipam.DecodeValidAttachments(args.StdinData)
	if err != nil {
		return err
	}
	var errs []error
	if err := p.ipam(conf.IPAM.Type).GC(ctx, args); err != nil {
		errs = append(errs, err)
	}
	for _, fam := range []iptables.Family{iptables.IPv4, iptables.IPv6} {
		_, err := p.masq().GC(fam, "bridge", conf.Name, func(o iptables.Owner) bool {
			return keep.Has(o.ContainerID, o.IfName)
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return cnierr.Internal("bridge GC", err)
	}
	return nil
}

// Status is ready when the IPAM can hand out addresses.
func (p Plugin) Status(ctx context.Context, args *skel.CmdArgs, conf *NetConf) error {
	return p.ipam(conf.IPAM.Type).Status(ctx, args)
}

// Commands adapts Plugin to skel's callbacks: parse, run, print.
type Commands struct {
	Plugin Plugin
	Print  func(res types.Result, cniVersion string) error
	// DecodePrev decodes the prevResult of a config (nil when absent).
	DecodePrev func(stdin []byte) (*current.Result, error)
}

func (c Commands) Add(args *skel.CmdArgs) error {
	conf, err := ParseConf(args.StdinData)
	if err != nil {
		return err
	}
	res, err := c.Plugin.Add(context.Background(), args, conf)
	if err != nil {
		return err
	}
	return c.Print(res, conf.CNIVersion)
}

func (c Commands) Del(args *skel.CmdArgs) error {
	conf, err := ParseConf(args.StdinData)
	if err != nil {
		return err
	}
	prev, err := c.DecodePrev(args.StdinData)
	if err != nil {
		prev = nil // DEL is best-effort: an unreadable prevResult only widens the cleanup
	}
	return c.Plugin.Del(context.Background(), args, conf, prev)
}

func (c Commands) Check(args *skel.CmdArgs) error {
	conf, err := ParseConf(args.StdinData)
	if err != nil {
		return err
	}
	prev, err := c.DecodePrev(args.StdinData)
	if err != nil {
		return err
	}
	return c.Plugin.Check(context.Background(), args, conf, prev)
}

func (c Commands) GC(args *skel.CmdArgs) error {
	conf, err := ParseConf(args.StdinData)
	if err != nil {
		return err
	}
	return c.Plugin.GC(context.Background(), args, conf)
}

func (c Commands) Status(args *skel.CmdArgs) error {
	conf, err := ParseConf(args.StdinData)
	if err != nil {
		return err
	}
	return c.Plugin.Status(context.Background(), args, conf)
}
