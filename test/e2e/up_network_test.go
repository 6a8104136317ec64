package e2e

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/hoist-project/hoist/flannel/subnetenv"
)

// setUpMachineNetns brings lo up and adds the machine's "NIC": veth
// hoist-nic0 (with ip/24) whose peer hoist-nic1 stays in the same netns,
// so the link has carrier without leaving the netns, and a default route
// through it (the .1, which does not exist) like a real machine has: the
// kernel routes a connection to a ClusterIP before the proxy's DNAT
// reroutes it to the pod. Run it inside the netns.
func setUpMachineNetns(ip string) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return err
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "hoist-nic0"}, PeerName: "hoist-nic1"}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth hoist-nic0: %w", err)
	}
	addr, err := netlink.ParseAddr(ip + "/24")
	if err != nil {
		return err
	}
	nic, err := netlink.LinkByName("hoist-nic0")
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(nic, addr); err != nil {
		return err
	}
	for _, name := range []string{"hoist-nic0", "hoist-nic1"} {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
	}
	gw := addr.IP.Mask(addr.Mask)
	gw[len(gw)-1] = 1
	return netlink.RouteAdd(&netlink.Route{LinkIndex: nic.Attrs().Index, Gw: gw})
}

// checkPodInNodeSubnet checks flanneld's subnet.env exists, carries the
// node's spec.podCIDR, and that podIP lies inside it.
func checkPodInNodeSubnet(t *testing.T, subnetFile, podIP string, podCIDR func() (string, error)) {
	t.Helper()
	env, err := subnetenv.Read(subnetFile)
	if err != nil {
		t.Fatalf("flanneld's subnet.env: %v", err)
	}
	cidr, err := podCIDR()
	if err != nil {
		t.Fatalf("node podCIDR: %v", err)
	}
	if env.Subnet.String() != cidr {
		t.Fatalf("subnet.env subnet %s, want the node's spec.podCIDR %q", env.Subnet, cidr)
	}
	ip, err := netip.ParseAddr(podIP)
	if err != nil || !env.Subnet.Contains(ip) {
		t.Fatalf("pod IP %q is not inside the node's podCIDR %s", podIP, env.Subnet)
	}
}
