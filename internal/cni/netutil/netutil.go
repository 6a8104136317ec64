// Package netutil holds the netlink steps CNI plugins share: stable host
// veth names, creating a veth pair straight into a container namespace,
// addresses without IPv6 DAD, routes, and sysctls.
package netutil

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// HostVethName is the host-side veth name for a container interface. It is
// derived from the attachment, so DEL finds it without any saved state.
func HostVethName(containerID, ifname string) string {
	sum := sha256.Sum256([]byte(containerID + "\x00" + ifname))
	return "veth" + hex.EncodeToString(sum[:])[:11]
}

// IsNotFound reports whether err says a link, address or route does not exist.
func IsNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}

// CreateVeth makes a veth pair whose host end (hostName) stays in the current
// namespace and whose peer is created directly as ifname inside the
// namespace at nsPath: no rename or move step, nothing to undo in between.
func CreateVeth(hostName, ifname string, mtu int, nsPath string) (netlink.Link, error) {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", nsPath, err)
	}
	defer ns.Close()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostName, MTU: mtu},
		PeerName:      ifname,
		PeerNamespace: netlink.NsFd(int(ns)),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("create veth %s/%s: %w", hostName, ifname, err)
	}
	link, err := netlink.LinkByName(hostName)
	if err != nil {
		_ = netlink.LinkDel(veth)
		return nil, fmt.Errorf("find new veth %s: %w", hostName, err)
	}
	return link, nil
}

// AddAddr adds an address; IPv6 addresses skip duplicate address detection
// so the interface is usable at once. An existing identical address is fine.
func AddAddr(link netlink.Link, ipn net.IPNet) error {
	a := &netlink.Addr{IPNet: &ipn}
	if ipn.IP.To4() == nil {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := netlink.AddrAdd(link, a); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add address %s to %s: %w", ipn.String(), link.Attrs().Name, err)
	}
	return nil
}

// AddRoute adds a route via gw (nil: on-link) out of link; an existing one is fine.
func AddRoute(link netlink.Link, dst *net.IPNet, gw net.IP) error {
	r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Gw: gw}
	if err := netlink.RouteAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add route %s via %s: %w", dst.String(), gw, err)
	}
	return nil
}

// HasRoute reports whether link has a route to dst (via gw when gw is set).
func HasRoute(link netlink.Link, dst *net.IPNet, gw net.IP) (bool, error) {
	fam := netlink.FAMILY_V4
	if dst.IP.To4() == nil {
		fam = netlink.FAMILY_V6
	}
	routes, err := netlink.RouteList(link, fam)
	if err != nil {
		return false, err
	}
	for _, r := range routes {
		rd := r.Dst
		if rd == nil {
			rd = DefaultRoute(dst.IP.To4() != nil)
		}
		if rd.String() == dst.String() && (gw == nil || gw.Equal(r.Gw)) {
			return true, nil
		}
	}
	return false, nil
}

// DefaultRoute is 0.0.0.0/0 or ::/0.
func DefaultRoute(v4 bool) *net.IPNet {
	if v4 {
		return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	}
	return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
}

// Sysctl writes value to /proc/sys/<key> (e.g. "net/ipv4/ip_forward") in the
// calling thread's network namespace; unchanged values are not rewritten.
func Sysctl(key, value string) error {
	p := filepath.Join("/proc/sys", key)
	if cur, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(cur)) == value {
		return nil
	}
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// Interface describes link as a result interface.
func Interface(link netlink.Link, sandbox string) *current.Interface {
	return &current.Interface{Name: link.Attrs().Name, Mac: link.Attrs().HardwareAddr.String(), Sandbox: sandbox}
}
