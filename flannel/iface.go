package flannel

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// public is the interface that carries inter-node traffic.
type public struct {
	name  string
	index int
	mtu   int
	ip    netip.Addr
}

// findPublic resolves the public interface and IP: by name, by the
// interface holding ip, or by the default route.
func findPublic(name string, ip netip.Addr) (public, error) {
	var link netlink.Link
	var err error
	switch {
	case name != "":
		if link, err = netlink.LinkByName(name); err != nil {
			return public{}, fmt.Errorf("public interface %q: %w (set --iface to an existing interface)", name, err)
		}
	case ip.IsValid():
		if link, err = linkWithAddr(ip); err != nil {
			return public{}, err
		}
	default:
		routes, err := netlink.RouteGet(netip.MustParseAddr("1.1.1.1").AsSlice())
		if err != nil || len(routes) == 0 {
			return public{}, fmt.Errorf("no default route to pick the public interface from: set --iface or --public-ip")
		}
		if link, err = netlink.LinkByIndex(routes[0].LinkIndex); err != nil {
			return public{}, err
		}
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return public{}, fmt.Errorf("addresses of %s: %w", link.Attrs().Name, err)
	}
	p := public{name: link.Attrs().Name, index: link.Attrs().Index, mtu: link.Attrs().MTU}
	for _, a := range addrs {
		got, _ := netip.AddrFromSlice(a.IP.To4())
		if (!ip.IsValid() && got.IsGlobalUnicast()) || (ip.IsValid() && got == ip) {
			p.ip = got
			return p, nil
		}
	}
	if ip.IsValid() {
		return p, fmt.Errorf("--public-ip %s is not an address of interface %s", ip, p.name)
	}
	return p, fmt.Errorf("interface %s has no IPv4 address to use as the public IP: set --public-ip", p.name)
}

func linkWithAddr(ip netip.Addr) (netlink.Link, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if got, _ := netip.AddrFromSlice(a.IP.To4()); got == ip {
			return netlink.LinkByIndex(a.LinkIndex)
		}
	}
	return nil, fmt.Errorf("--public-ip %s is not assigned to any interface of this node", ip)
}
