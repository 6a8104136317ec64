package cluster

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"

	"github.com/hoist-project/hoist/internal/cni/nodeconf"
	"github.com/hoist-project/hoist/internal/fabric"
	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/vishvananda/netlink"
)

// nodeState plans node k of the fabric.
func nodeState(l layout, fabricName string, k int, fn fabric.Node) NodeState {
	name := NodeName(k)
	return NodeState{
		Name: name, Netns: fn.Netns, NetnsPath: fn.NetnsPath, IP: fn.IP,
		// Per node, so kubelets never adopt or clean up each other's pods.
		ContainerdNamespace: "hoist-" + fabricName + "-" + name,
		CgroupParent:        "hoist-" + fabricName + "-" + name,
		BPFPinDir:           "/sys/fs/bpf/hoist-" + fabricName + "-" + name,
		Dirs:                l.node(name),
	}
}

// cniPaths are the node's own flannel meta-plugin state paths.
func (n NodeState) cniPaths() nodeconf.Paths {
	return nodeconf.Paths{SubnetFile: n.Dirs.SubnetFile, FlannelData: n.Dirs.CNIFlannel, IPAMData: n.Dirs.CNIIPAMDir}
}

// addServiceRoute routes the service CIDR out of the node's eth0 without a
// gateway. Nodes have no default route (nothing leaves the fabric), but a
// local connect to a ClusterIP needs some route before the proxy's OUTPUT
// DNAT rewrites the destination; a service address nobody DNATs finds no
// neighbour on the fabric and goes nowhere.
func addServiceRoute(n NodeState, serviceCIDR string) error {
	_, dst, err := net.ParseCIDR(serviceCIDR)
	if err != nil {
		return err
	}
	return nsutil.Do(n.NetnsPath, func() error {
		eth0, err := netlink.LinkByName("eth0")
		if err != nil {
			return fmt.Errorf("find eth0: %w", err)
		}
		r := &netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("route %s dev eth0: %w", dst, err)
		}
		return nil
	})
}

// nodeProcess is one daemon of a node: its name and command line.
type nodeProcess struct {
	name string
	argv []string
}

// nodeProcesses returns the kubelet, flanneld and proxy command lines of n.
// flanneldEtcd is the etcd endpoint for --subnet-mgr etcd.
func nodeProcesses(c *Config, n NodeState, imageDir, flanneldEtcd string) []nodeProcess {
	kubelet := []string{c.Hoist, "kubelet",
		"--node-name", n.Name, "--node-ip", n.IP.String(),
		"--kubeconfig", n.Dirs.Kubeconfig,
		"--root-dir", n.Dirs.KubeletRoot, "--log-root", n.Dirs.PodLogs,
		"--containerd-address", c.ContainerdAddress, "--containerd-namespace", n.ContainerdNamespace,
		"--cni-conf-dir", n.Dirs.CNIConfDir, "--cni-bin-dir", c.CNIBinDir,
		"--image-dir", imageDir, "--cgroup-parent", n.CgroupParent,
		// Upstream's kubelet sets this label itself; spreading pods by
		// hostname (anti-affinity, topology spread) depends on it.
		"--node-labels", "kubernetes.io/hostname=" + n.Name,
	}
	flanneld := []string{c.Hoist, "flanneld", "--subnet-mgr", c.SubnetManager,
		"--node-name", n.Name, "--public-ip", n.IP.String(), "--subnet-file", n.Dirs.SubnetFile}
	if c.SubnetManager == SubnetManagerEtcd {
		flanneld = append(flanneld, "--etcd-endpoints", flanneldEtcd)
	} else {
		// Subnets come from the podCIDRs the master's node IPAM assigns.
		flanneld = append(flanneld, "--kubeconfig", n.Dirs.Kubeconfig, "--cluster-cidr", c.ClusterCIDR, "--backend", c.Backend)
	}
	proxy := []string{c.Hoist, "proxy", "--node-name", n.Name, "--kubeconfig", n.Dirs.Kubeconfig,
		"--mode", c.ProxyMode, "--cluster-cidr", c.ClusterCIDR}
	if c.ProxyMode == ProxyEBPF {
		proxy = append(proxy, "--bpffs-dir", n.BPFPinDir, "--cgroup-path", n.ProxyCgroup)
	}
	return []nodeProcess{
		{n.Name + "-flanneld", flanneld},
		{n.Name + "-kubelet", kubelet},
		{n.Name + "-proxy", proxy},
	}
}

// flannelNetworkConfig is the network config flanneld reads from etcd.
func flannelNetworkConfig(c *Config) string {
	b, _ := json.Marshal(map[string]any{"Network": c.ClusterCIDR, "Backend": map[string]string{"Type": c.Backend}})
	return string(b)
}

func hostPort(host fmt.Stringer, port int) string {
	return host.String() + ":" + strconv.Itoa(port)
}
