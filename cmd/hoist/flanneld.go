package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hoist-project/hoist/flannel"
	"github.com/hoist-project/hoist/flannel/metrics"
	"github.com/hoist-project/hoist/flannel/subnet/etcd"
)

const flanneldUsage = `usage: hoist flanneld [--subnet-mgr etcd] [--etcd-endpoints URL[,URL...]] [--etcd-prefix PREFIX]
  [--subnet-lease-ttl DURATION] [--node-name NAME] [--iface NAME] [--public-ip IP]
  [--subnet-file PATH] [--ip-masq=true|false] [--resync-interval DURATION] [--healthz-address ADDR|-]`

// runFlanneld parses flags into flannel.Config and runs the fabric daemon.
func runFlanneld(ctx context.Context, args []string) error {
	var cfg flannel.Config
	fs := flag.NewFlagSet("flanneld", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	mgr := fs.String("subnet-mgr", "etcd", "subnet lease store: etcd")
	endpoints := fs.String("etcd-endpoints", "http://127.0.0.1:2379", "etcd endpoints, comma-separated")
	prefix := fs.String("etcd-prefix", etcd.DefaultPrefix, "etcd prefix of the network config and leases")
	ttl := fs.Duration("subnet-lease-ttl", etcd.DefaultTTL, "lifetime of the subnet lease without renewal")
	fs.StringVar(&cfg.NodeName, "node-name", "", "node name, the lease's owner across restarts (default: host name)")
	fs.StringVar(&cfg.Iface, "iface", "", "interface for inter-node traffic (default: the one holding --public-ip, else the default route's)")
	publicIP := fs.String("public-ip", "", "this node's IP for inter-node traffic (default: first IPv4 address of --iface)")
	fs.StringVar(&cfg.SubnetFile, "subnet-file", flannel.DefaultSubnetFile, "where subnet.env is written")
	fs.BoolVar(&cfg.IPMasq, "ip-masq", true, "masquerade traffic leaving the cluster CIDR")
	fs.DurationVar(&cfg.Resync, "resync-interval", flannel.DefaultResync, "period of the repair resync")
	fs.StringVar(&cfg.HealthzAddress, "healthz-address", metrics.DefaultAddress, "address of /healthz and /metrics (- disables)")
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("flanneld: %v\n%s", err, flanneldUsage)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("flanneld: unexpected arguments %q\n%s", fs.Args(), flanneldUsage)}
	}
	if *publicIP != "" {
		ip, err := netip.ParseAddr(*publicIP)
		if err != nil || !ip.Is4() {
			return usageError{fmt.Sprintf("flanneld: --public-ip %q is not an IPv4 address", *publicIP)}
		}
		cfg.PublicIP = ip
	}
	if *mgr != "etcd" {
		return usageError{fmt.Sprintf("flanneld: --subnet-mgr %q is not available: use etcd (the kube manager is not implemented yet)", *mgr)}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   strings.Split(*endpoints, ","),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return fmt.Errorf("flanneld: etcd client for %s: %w", *endpoints, err)
	}
	defer cli.Close()
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg.Store = etcd.New(cli, *prefix, *ttl, cfg.Log)
	return flannel.Run(ctx, cfg)
}
