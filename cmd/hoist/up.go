package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"github.com/hoist-project/hoist/internal/up"
	"github.com/hoist-project/hoist/master"
)

const upUsage = `usage: hoist up --data-dir DIR [--node-name NAME] [--secure-address HOST:PORT]
  [--containerd-address SOCK] [--cni-bin-dir DIR] [--pod-cidr CIDR] [--cluster-cidr CIDR]
  [--service-cidr CIDR] [--cgroup-parent NAME]`

// runUp runs a single-machine cluster: master and kubelet in one process.
func runUp(ctx context.Context, args []string) error {
	var cfg up.Config
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.DataDir, "data-dir", "", "state directory (etcd, certificates, admin.kubeconfig, kubelet, images, CNI)")
	fs.StringVar(&cfg.NodeName, "node-name", "", "name of this machine's node (default: host name)")
	fs.StringVar(&cfg.SecureAddress, "secure-address", master.DefaultSecureAddress, "TLS API address")
	fs.StringVar(&cfg.ContainerdAddress, "containerd-address", "/run/containerd/containerd.sock", "containerd socket")
	fs.StringVar(&cfg.CNIBinDir, "cni-bin-dir", "", "CNI plugin directory (default: <dir of the hoist executable>/cni)")
	fs.StringVar(&cfg.PodCIDR, "pod-cidr", up.DefaultPodCIDR, "this node's pod range (default: the podCIDR node IPAM assigns, else "+up.DefaultPodCIDR+")")
	fs.StringVar(&cfg.ClusterCIDR, "cluster-cidr", master.DefaultClusterCIDR, "pod network; node IPAM gives the node a podCIDR out of it")
	fs.StringVar(&cfg.ServiceCIDR, "service-cidr", master.DefaultServiceCIDR, "range service ClusterIPs are allocated from")
	fs.StringVar(&cfg.CgroupParent, "cgroup-parent", "kubepods", "parent cgroup of all pods")
	stopPods := fs.Bool("stop-pods", false, "stop the pods when hoist up stops (not implemented yet)")
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("up: %v\n%s", err, upUsage)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("up: unexpected arguments %q\n%s", fs.Args(), upUsage)}
	}
	if cfg.DataDir == "" {
		return usageError{"up: --data-dir is required\n" + upUsage}
	}
	if *stopPods {
		return usageError{"up: --stop-pods is not implemented yet (the kubelet has no stop-all): delete the pods with kubectl before stopping hoist up"}
	}
	if _, _, err := net.ParseCIDR(cfg.PodCIDR); err != nil {
		return usageError{fmt.Sprintf("up: --pod-cidr %q is not a CIDR like 10.244.0.0/24", cfg.PodCIDR)}
	}
	fs.Visit(func(f *flag.Flag) { cfg.ForcePodCIDR = cfg.ForcePodCIDR || f.Name == "pod-cidr" })
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := up.Run(ctx, cfg); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	return nil
}
