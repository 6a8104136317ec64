package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/hoist-project/hoist/proxy"
	"github.com/hoist-project/hoist/proxy/ebpf"
)

const proxyUsage = `usage: hoist proxy --node-name NAME [--kubeconfig PATH] [--mode iptables|ebpf]
  [--cluster-cidr CIDR] [--nodeport-addresses IP[,IP...]] [--localhost-nodeports]
  [--healthz-address ADDR] [--metrics-address ADDR] [--min-sync-interval D] [--sync-period D] [--full-sync-period D]
  [--bpffs-dir DIR] [--cgroup-path DIR] [--nodeport-interfaces IF[,IF...]]   (ebpf mode)`

// runProxy parses flags into proxy.Config and runs the service proxy.
func runProxy(ctx context.Context, args []string) error {
	cfg := proxy.Config{}
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig of the API server (default: in-cluster config)")
	fs.StringVar(&cfg.Mode, "mode", proxy.ModeIPTables, "data path: iptables or ebpf")
	fs.StringVar(&cfg.NodeName, "node-name", "", "this node's name (selects local endpoints)")
	cidr := fs.String("cluster-cidr", "10.244.0.0/16", "pod CIDR; traffic from outside it to cluster IPs is masqueraded (\"\" disables)")
	npa := fs.String("nodeport-addresses", "", "comma-separated node addresses that serve NodePorts (default: all local addresses)")
	fs.BoolVar(&cfg.LocalhostNodePorts, "localhost-nodeports", false, "also serve NodePorts on 127.0.0.1 (sets route_localnet)")
	fs.StringVar(&cfg.HealthzAddress, "healthz-address", proxy.DefaultHealthzAddress, "address of /healthz (\"\" disables)")
	fs.StringVar(&cfg.MetricsAddress, "metrics-address", proxy.DefaultMetricsAddress, "address of /metrics (\"\" disables)")
	fs.DurationVar(&cfg.MinSyncInterval, "min-sync-interval", proxy.DefaultMinSyncInterval, "minimum time between syncs")
	fs.DurationVar(&cfg.SyncPeriod, "sync-period", proxy.DefaultSyncPeriod, "period of the sync without changes (rules and conntrack)")
	fs.DurationVar(&cfg.FullSyncPeriod, "full-sync-period", proxy.DefaultFullSyncPeriod, "period of the full rewrite of every chain")
	fs.StringVar(&cfg.BPFFSDir, "bpffs-dir", ebpf.DefaultPinDir, "ebpf mode: bpffs directory for the pinned maps and links (mounted if needed)")
	fs.StringVar(&cfg.CgroupPath, "cgroup-path", "", "ebpf mode: cgroup v2 directory for the socket programs (default: the cgroup v2 root)")
	npi := fs.String("nodeport-interfaces", "", "ebpf mode: comma-separated interfaces that get the tc NodePort programs (default: every non-loopback interface with an IPv4 address)")
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("proxy: %v\n%s", err, proxyUsage)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("proxy: unexpected arguments %q\n%s", fs.Args(), proxyUsage)}
	}
	if cfg.Mode != proxy.ModeIPTables && cfg.Mode != proxy.ModeEBPF {
		return usageError{fmt.Sprintf("proxy: --mode %q: use iptables or ebpf", cfg.Mode)}
	}
	if cfg.NodeName == "" {
		return usageError{"proxy: --node-name is required\n" + proxyUsage}
	}
	if *cidr != "" {
		p, err := netip.ParsePrefix(*cidr)
		if err != nil || !p.Addr().Is4() {
			return usageError{fmt.Sprintf("proxy: --cluster-cidr %q is not an IPv4 CIDR", *cidr)}
		}
		cfg.ClusterCIDR = p.Masked()
	}
	if *npa != "" {
		for _, s := range strings.Split(*npa, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil || !a.Is4() {
				return usageError{fmt.Sprintf("proxy: --nodeport-addresses: %q is not an IPv4 address", s)}
			}
			cfg.NodePortAddresses = append(cfg.NodePortAddresses, a)
		}
	}
	if *npi != "" {
		for _, s := range strings.Split(*npi, ",") {
			cfg.NodePortInterfaces = append(cfg.NodePortInterfaces, strings.TrimSpace(s))
		}
	}
	return proxy.Run(ctx, cfg)
}
