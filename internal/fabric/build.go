package fabric

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/hoist-project/hoist/internal/nsutil"
)

// nsHandle is a netlink handle working inside one named namespace.
type nsHandle struct {
	*netlink.Handle
	fd netns.NsHandle
}

func openNS(path string) (*nsHandle, error) {
	fd, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	h, err := netlink.NewHandleAt(fd)
	if err != nil {
		fd.Close()
		return nil, fmt.Errorf("netlink handle in %s: %w", path, err)
	}
	return &nsHandle{Handle: h, fd: fd}, nil
}

func (h *nsHandle) close() {
	h.Handle.Close()
	h.fd.Close()
}

// build creates the namespaces and links that st describes.
func build(st State) error {
	fabricPath, err := nsutil.CreateNamed(st.FabricNetns)
	if err != nil {
		return err
	}
	fab, err := openNS(fabricPath)
	if err != nil {
		return err
	}
	defer fab.close()
	if err := linkUp(fab.Handle, "lo"); err != nil {
		return err
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName, MTU: st.MTU}}
	if err := fab.LinkAdd(br); err != nil {
		return fmt.Errorf("add bridge in %s: %w", st.FabricNetns, err)
	}
	if err := linkUp(fab.Handle, bridgeName); err != nil {
		return err
	}

	// The root namespace's link: created with its peer already in the fabric.
	root := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: st.HostLink, MTU: st.MTU},
		PeerName:      hostPeerName,
		PeerNamespace: netlink.NsFd(fab.fd),
	}
	if err := netlink.LinkAdd(root); err != nil {
		return fmt.Errorf("add veth %s in the root namespace: %w", st.HostLink, err)
	}
	// No IPv6 on our root link: no link-local route, no router solicitations.
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+st.HostLink+"/disable_ipv6", []byte("1"), 0o644)
	if err := enslave(fab.Handle, hostPeerName); err != nil {
		return err
	}
	if err := addrUp(&netlink.Handle{}, st.HostLink, st.HostIP, st.Subnet); err != nil {
		return err
	}

	for _, n := range st.Nodes {
		if err := buildNode(fab, n, st); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	return nil
}

// buildNode creates a node namespace whose eth0 is a veth into the bridge.
func buildNode(fab *nsHandle, n Node, st State) error {
	if _, err := nsutil.CreateNamed(n.Netns); err != nil {
		return err
	}
	node, err := openNS(n.NetnsPath)
	if err != nil {
		return err
	}
	defer node.close()
	if err := linkUp(node.Handle, "lo"); err != nil {
		return err
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: n.Name, MTU: st.MTU},
		PeerName:      nodeIfName,
		PeerNamespace: netlink.NsFd(node.fd),
	}
	if err := fab.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth %s/%s: %w", n.Name, nodeIfName, err)
	}
	if err := enslave(fab.Handle, n.Name); err != nil {
		return err
	}
	return addrUp(node.Handle, nodeIfName, n.IP, st.Subnet)
}

func linkUp(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// enslave attaches a fabric-namespace port to the bridge and sets it up.
func enslave(h *netlink.Handle, port string) error {
	br, err := h.LinkByName(bridgeName)
	if err != nil {
		return fmt.Errorf("find bridge: %w", err)
	}
	l, err := h.LinkByName(port)
	if err != nil {
		return fmt.Errorf("find %s: %w", port, err)
	}
	if err := h.LinkSetMaster(l, br); err != nil {
		return fmt.Errorf("attach %s to %s: %w", port, bridgeName, err)
	}
	return linkUp(h, port)
}

// addrUp gives a link its fabric address and sets it up. The kernel adds the
// connected route; nothing else is routed. &netlink.Handle{} is the root namespace.
func addrUp(h *netlink.Handle, name string, ip netip.Addr, subnet netip.Prefix) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(subnet.Bits(), 32)}}
	if err := h.AddrAdd(l, addr); err != nil {
		return fmt.Errorf("add %s to %s: %w", addr.IPNet, name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// teardown removes whatever exists of st: the root link (its veth peer goes
// with it), then the node and fabric namespaces (their links go with them).
func teardown(st State) error {
	var errs []error
	if l, err := netlink.LinkByName(st.HostLink); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete link %s: %w", st.HostLink, err))
		}
	} else if !errors.As(err, new(netlink.LinkNotFoundError)) {
		errs = append(errs, fmt.Errorf("find link %s: %w", st.HostLink, err))
	}
	for _, n := range st.Nodes {
		errs = append(errs, nsutil.DeleteNamed(n.Netns))
	}
	errs = append(errs, nsutil.DeleteNamed(st.FabricNetns))
	return errors.Join(errs...)
}
