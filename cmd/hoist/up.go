package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"

	"github.com/hoist-project/hoist/flannel/config"
	"github.com/hoist-project/hoist/internal/up"
	"github.com/hoist-project/hoist/kubelet"
	"github.com/hoist-project/hoist/master"
	"github.com/hoist-project/hoist/proxy"
)

const upUsage = `usage: hoist up --data-dir DIR [--node-name NAME] [--secure-address HOST:PORT]
  [--containerd-address SOCK] [--cni-bin-dir DIR] [--cluster-cidr CIDR] [--service-cidr CIDR]
  [--cgroup-parent NAME] [--iface NAME] [--public-ip IP] [--backend vxlan|host-gw] [--proxy-mode iptables|ebpf]
  [--stop-pods] [--stop-pods-timeout DURATION]`

// runUp runs a single-machine cluster: master, kubelet, flanneld and proxy in one process.
func runUp(ctx context.Context, args []string) error {
	var cfg up.Config
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.DataDir, "data-dir", "", "state directory (etcd, certificates, admin.kubeconfig, kubelet, images, CNI, flannel)")
	fs.StringVar(&cfg.NodeName, "node-name", "", "name of this machine's node (default: host name)")
	fs.StringVar(&cfg.SecureAddress, "secure-address", master.DefaultSecureAddress, "TLS API address")
	fs.StringVar(&cfg.ContainerdAddress, "containerd-address", "/run/containerd/containerd.sock", "containerd socket")
	fs.StringVar(&cfg.CNIBinDir, "cni-bin-dir", "", "CNI plugin directory (default: <dir of the hoist executable>/cni)")
	podCIDR := fs.String("pod-cidr", "", "removed: node IPAM assigns the node's podCIDR out of --cluster-cidr")
	fs.StringVar(&cfg.ClusterCIDR, "cluster-cidr", master.DefaultClusterCIDR, "pod network; node IPAM gives the node a podCIDR out of it, flanneld routes it")
	fs.StringVar(&cfg.ServiceCIDR, "service-cidr", master.DefaultServiceCIDR, "range service ClusterIPs are allocated from")
	fs.StringVar(&cfg.CgroupParent, "cgroup-parent", "kubepods", "parent cgroup of all pods")
	fs.StringVar(&cfg.Iface, "iface", "", "flanneld's public interface (default: the one holding --public-ip, else the default route's)")
	publicIP := fs.String("public-ip", "", "flanneld's public IP (default: first IPv4 address of --iface)")
	fs.StringVar(&cfg.Backend, "backend", config.VXLAN, "flannel backend: vxlan or host-gw")
	fs.StringVar(&cfg.ProxyMode, "proxy-mode", proxy.ModeIPTables, "service proxy data path: iptables or ebpf")
	fs.BoolVar(&cfg.StopPods, "stop-pods", false, "stop every pod gracefully when hoist up stops (default: leave them running for the next start to adopt)")
	fs.DurationVar(&cfg.StopPodsTimeout, "stop-pods-timeout", kubelet.DefaultStopPodsTimeout, "deadline of --stop-pods; pod grace periods are capped to leave 10s of it for teardown")
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("up: %v\n%s", err, upUsage)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("up: unexpected arguments %q\n%s", fs.Args(), upUsage)}
	}
	if cfg.DataDir == "" {
		return usageError{"up: --data-dir is required\n" + upUsage}
	}
	if cfg.StopPodsTimeout <= 0 {
		return usageError{fmt.Sprintf("up: --stop-pods-timeout %s: must be positive", cfg.StopPodsTimeout)}
	}
	if *podCIDR != "" {
		return usageError{"up: --pod-cidr is gone: node IPAM assigns the node's podCIDR out of --cluster-cidr (set that instead)"}
	}
	if cfg.ProxyMode != proxy.ModeIPTables && cfg.ProxyMode != proxy.ModeEBPF {
		return usageError{fmt.Sprintf("up: --proxy-mode %q: use iptables or ebpf", cfg.ProxyMode)}
	}
	if *publicIP != "" {
		ip, err := netip.ParseAddr(*publicIP)
		if err != nil || !ip.Is4() {
			return usageError{fmt.Sprintf("up: --public-ip %q is not an IPv4 address", *publicIP)}
		}
		cfg.PublicIP = ip
	}
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	preferSmallHeap(50) // one process holding the master's and the kubelet's heaps
	if err := up.Run(ctx, cfg); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	return nil
}
