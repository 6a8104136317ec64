package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hoist-project/hoist/master"
)

const masterUsage = `usage: hoist master --data-dir DIR [--secure-address HOST:PORT] [--advertise-address IP]
                    [--tls-san NAME|IP]... [--token-auth-file FILE] [--etcd-servers URLS]
                    [--service-cidr CIDR] [--service-node-port-range FIRST-LAST]
                    [--etcd-client-url URL] [--etcd-peer-url URL] [--insecure-address HOST:PORT]
                    [--node-monitor-grace-period DURATION] [--node-monitor-period DURATION]
                    [--pod-eviction-timeout DURATION]`

// listFlag collects a flag given several times or comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// runMaster runs the API server on embedded or external etcd.
func runMaster(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("master", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cfg master.Config
	var etcdServers string
	fs.StringVar(&cfg.DataDir, "data-dir", "/var/lib/hoist/master", "state directory (embedded etcd in DIR/etcd, certificates in DIR/pki, DIR/admin.kubeconfig, DIR/join-token)")
	fs.StringVar(&cfg.SecureAddress, "secure-address", master.DefaultSecureAddress, "TLS API address (authenticated and authorized)")
	fs.StringVar(&cfg.AdvertiseAddress, "advertise-address", "", "IP nodes reach the API at (default: the bound IP, or the outbound IP for a wildcard bind)")
	fs.Var((*listFlag)(&cfg.TLSSANs), "tls-san", "extra serving-certificate SAN (DNS name or IP); repeat or comma-separate")
	fs.StringVar(&cfg.TokenAuthFile, "token-auth-file", "", `static bearer tokens, lines of token,user,uid[,"group1,group2"]`)
	fs.StringVar(&etcdServers, "etcd-servers", "", "comma-separated client URLs of an external etcd cluster (default: run etcd embedded)")
	fs.StringVar(&cfg.EtcdClientURL, "etcd-client-url", master.DefaultEtcdClientURL, "client URL of the embedded etcd")
	fs.StringVar(&cfg.EtcdPeerURL, "etcd-peer-url", master.DefaultEtcdPeerURL, "peer URL of the embedded etcd")
	fs.StringVar(&cfg.ServiceCIDR, "service-cidr", master.DefaultServiceCIDR, "range service ClusterIPs are allocated from")
	fs.StringVar(&cfg.ClusterCIDR, "cluster-cidr", master.DefaultClusterCIDR, "pod network; node IPAM gives each Node a podCIDR out of it")
	fs.Var((*listFlag)(&cfg.DisableControllers), "disable-controllers", "built-in controllers not to run (e.g. nodelifecycle, scheduler); repeat or comma-separate")
	fs.StringVar(&cfg.NodePortRange, "service-node-port-range", master.DefaultNodePortRange, "range NodePorts are allocated from")
	fs.DurationVar(&cfg.NodeMonitorGracePeriod, "node-monitor-grace-period", 40*time.Second, "node silence before it is marked Unknown (Ready=Unknown, unreachable taints)")
	fs.DurationVar(&cfg.NodeMonitorPeriod, "node-monitor-period", 5*time.Second, "how often node heartbeats are checked")
	fs.DurationVar(&cfg.PodEvictionTimeout, "pod-eviction-timeout", 300*time.Second,
		"how long pods without their own toleration stay on a not-ready/unreachable node (default tolerationSeconds)")
	fs.StringVar(&cfg.InsecureAddress, "insecure-address", "",
		"debugging only: also serve the API over plain HTTP WITHOUT authentication (default off; keep it on loopback)")
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("master: %v\n%s", err, masterUsage)}
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Sprintf("master: unexpected arguments %q\n%s", fs.Args(), masterUsage)}
	}
	for name, d := range map[string]time.Duration{"node-monitor-grace-period": cfg.NodeMonitorGracePeriod,
		"node-monitor-period": cfg.NodeMonitorPeriod, "pod-eviction-timeout": cfg.PodEvictionTimeout} {
		if d <= 0 {
			return usageError{fmt.Sprintf("master: --%s must be positive, got %s\n%s", name, d, masterUsage)}
		}
	}
	if etcdServers != "" {
		cfg.EtcdServers = strings.Split(etcdServers, ",")
	}
	// Most of the master's heap is caches of what etcd holds; GOGC=50 keeps
	// RSS with 10,000 pods under 250 MiB for ~20% more GC CPU on bursts of
	// writes (docs/bench/master.md).
	preferSmallHeap(50)
	return master.Run(ctx, cfg)
}
