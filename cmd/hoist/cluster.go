package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/hoist-project/hoist/internal/cluster"
	"github.com/hoist-project/hoist/internal/fabric"
	"github.com/hoist-project/hoist/master"
)

const clusterUsage = `usage: hoist cluster up --data-dir DIR --nodes N [--backend vxlan|host-gw] [--subnet-mgr kube|etcd]
         [--proxy-mode iptables|ebpf] [--containerd-address SOCK] [--cni-bin-dir DIR]
         [--cluster-cidr CIDR] [--service-cidr CIDR] [--api-port P] [--etcd-port P] [--etcd-peer-port P]
         [--flannel-etcd-port P] [--flannel-etcd-peer-port P] [--ready-timeout D]
       hoist cluster exec --data-dir DIR NODE -- CMD [ARGS...]
       hoist cluster down --data-dir DIR | --all | --stale`

// runCluster dispatches `hoist cluster <verb>`.
func runCluster(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError{clusterUsage}
	}
	switch args[0] {
	case "up":
		return runClusterUp(ctx, args[1:])
	case "exec":
		return runClusterExec(args[1:])
	case "down":
		return runClusterDown(ctx, args[1:], os.Stdout)
	case "-h", "--help", "help":
		fmt.Fprintln(os.Stderr, clusterUsage)
		return nil
	default:
		return usageError{fmt.Sprintf("cluster: unknown verb %q; %s", args[0], clusterUsage)}
	}
}

// runClusterDown removes hoist fabrics, private containerd daemons and
// hoist-named network namespaces and links, printing one line per object.
func runClusterDown(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("hoist cluster down", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	all := fs.Bool("all", false, "remove every hoist fabric, private containerd, hoist-* netns and hst* root link, also of running processes")
	stale := fs.Bool("stale", false, "remove only what processes that have died left behind (safe while tests run)")
	dataDir := fs.String("data-dir", "", "remove the cluster kept under DIR")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.PrintDefaults()
			return nil
		}
		return usageError{"cluster down: " + err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("cluster down: unexpected argument %q", fs.Arg(0))}
	}
	switch {
	case *dataDir != "" && (*all || *stale):
		return usageError{"cluster down: --data-dir removes one cluster; --all and --stale sweep: give one of them"}
	case *dataDir != "":
		return downDataDir(ctx, *dataDir, out)
	case *all && *stale:
		return usageError{"cluster down: --all and --stale exclude each other"}
	case !*all && !*stale:
		return usageError{"cluster down: say what to remove: --all, --stale or --data-dir DIR"}
	}
	removed, err := fabric.Sweep(ctx, fabric.SweepOptions{All: *all})
	for _, r := range removed {
		fmt.Fprintln(out, "removed", r)
	}
	if len(removed) == 0 && err == nil {
		fmt.Fprintln(out, "nothing to remove")
	}
	return err
}

// downDataDir removes the cluster under dir.
func downDataDir(ctx context.Context, dir string, out io.Writer) error {
	removed, err := cluster.Down(ctx, dir)
	for _, r := range removed {
		fmt.Fprintln(out, "removed", r)
	}
	if len(removed) == 0 && err == nil {
		fmt.Fprintln(out, "nothing to remove")
	}
	if err != nil {
		return fmt.Errorf("cluster down: %w", err)
	}
	return nil
}

// runClusterUp parses flags into cluster.Config and brings the cluster up.
func runClusterUp(ctx context.Context, args []string) error {
	var cfg cluster.Config
	fs := flag.NewFlagSet("hoist cluster up", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.DataDir, "data-dir", "", "state, logs and admin.kubeconfig of the cluster (required)")
	fs.IntVar(&cfg.Nodes, "nodes", 2, fmt.Sprintf("number of nodes (1-%d)", cluster.MaxNodes))
	fs.StringVar(&cfg.Backend, "backend", cluster.BackendVXLAN, "flannel backend: vxlan or host-gw")
	fs.StringVar(&cfg.SubnetManager, "subnet-mgr", cluster.SubnetManagerKube, "flannel subnet manager: kube (Node.spec.podCIDR) or etcd (Debian's etcd on the fabric)")
	fs.StringVar(&cfg.ProxyMode, "proxy-mode", cluster.ProxyIPTables, "service proxy data path: iptables or ebpf")
	fs.StringVar(&cfg.ContainerdAddress, "containerd-address", cluster.DefaultContainerdAddress, "containerd socket shared by the nodes (one namespace each)")
	fs.StringVar(&cfg.CNIBinDir, "cni-bin-dir", "", "CNI plugins (default: <dir of the hoist executable>/cni)")
	fs.StringVar(&cfg.ClusterCIDR, "cluster-cidr", master.DefaultClusterCIDR, "pod network")
	fs.StringVar(&cfg.ServiceCIDR, "service-cidr", master.DefaultServiceCIDR, "ClusterIP range")
	fs.IntVar(&cfg.APIPort, "api-port", cluster.DefaultAPIPort, "API port on the fabric's host IP")
	fs.IntVar(&cfg.EtcdClientPort, "etcd-port", cluster.DefaultEtcdClientPort, "client port of the master's embedded etcd (127.0.0.1)")
	fs.IntVar(&cfg.EtcdPeerPort, "etcd-peer-port", cluster.DefaultEtcdPeerPort, "peer port of the master's embedded etcd (127.0.0.1)")
	fs.IntVar(&cfg.FlannelEtcdPort, "flannel-etcd-port", cluster.DefaultFlannelEtcdPort, "client port of flannel's etcd on the host IP (--subnet-mgr etcd)")
	fs.IntVar(&cfg.FlannelEtcdPeerPort, "flannel-etcd-peer-port", cluster.DefaultFlannelEtcdPeerPort, "peer port of flannel's etcd (127.0.0.1)")
	fs.DurationVar(&cfg.ReadyTimeout, "ready-timeout", 3*time.Minute, "how long to wait for every node to become Ready")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, clusterUsage)
			return nil
		}
		return usageError{fmt.Sprintf("cluster up: %v\n%s", err, clusterUsage)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("cluster up: unexpected arguments %q\n%s", fs.Args(), clusterUsage)}
	}
	if cfg.DataDir == "" {
		return usageError{"cluster up: --data-dir is required\n" + clusterUsage}
	}
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := cluster.Up(ctx, cfg); err != nil {
		return fmt.Errorf("cluster up: %w", err)
	}
	return nil
}

// runClusterExec replaces hoist with CMD running inside the node's network
// namespace (see cluster.Exec).
func runClusterExec(args []string) error {
	fs := flag.NewFlagSet("hoist cluster exec", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dataDir := fs.String("data-dir", "", "the cluster's data dir (required)")
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("cluster exec: %v\n%s", err, clusterUsage)}
	}
	rest := fs.Args()
	if *dataDir == "" || len(rest) < 1 {
		return usageError{"cluster exec: want --data-dir DIR NODE -- CMD [ARGS...]"}
	}
	node, argv := rest[0], rest[1:]
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	if err := cluster.Exec(*dataDir, node, argv); err != nil {
		return fmt.Errorf("cluster exec: %w", err)
	}
	return nil // not reached: Exec replaced this process
}
