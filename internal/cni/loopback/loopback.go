// Package loopback brings a container's lo interface up (the loopback plugin).
package loopback

import (
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/hoist-project/hoist/internal/cni/cnierr"
	"github.com/hoist-project/hoist/internal/cni/plugin"
	"github.com/hoist-project/hoist/internal/nsutil"
)

// Add sets lo up in the container and reports it (or passes prevResult on).
func Add(args *skel.CmdArgs) error {
	conf, prev, err := plugin.DecodeConf(args.StdinData)
	if err != nil {
		return err
	}
	err = nsutil.Do(args.Netns, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	if err != nil {
		return cnierr.Internal("set lo up in "+args.Netns, err)
	}
	res := prev
	if res == nil {
		res = &current.Result{
			CNIVersion: current.ImplementedSpecVersion,
			Interfaces: []*current.Interface{{Name: "lo", Sandbox: args.Netns}},
			IPs: []*current.IPConfig{
				{Interface: current.Int(0), Address: net.IPNet{IP: net.IPv4(127, 0, 0, 1).To4(), Mask: net.CIDRMask(8, 32)}},
				{Interface: current.Int(0), Address: net.IPNet{IP: net.IPv6loopback, Mask: net.CIDRMask(128, 128)}},
			},
		}
	}
	return plugin.Print(res, conf.CNIVersion)
}

// Del does nothing: lo goes away with the namespace, and taking it down
// would break other users of a shared namespace.
func Del(*skel.CmdArgs) error { return nil }

// Check verifies that lo is up.
func Check(args *skel.CmdArgs) error {
	return nsutil.Do(args.Netns, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return cnierr.Internal("find lo", err)
		}
		if lo.Attrs().Flags&net.FlagUp == 0 {
			return fmt.Errorf("lo is down in %s", args.Netns)
		}
		return nil
	})
}

// Status is always ready: loopback needs nothing from the host.
func Status(*skel.CmdArgs) error { return nil }
