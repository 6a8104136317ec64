package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/hoist-project/hoist/master"
)

const masterUsage = `usage: hoist master --data-dir DIR [--etcd-servers URLS] [--service-cidr CIDR]
                    [--service-node-port-range FIRST-LAST] [--insecure-address HOST:PORT]
                    [--etcd-client-url URL] [--etcd-peer-url URL]`

// runMaster runs the API server on embedded or external etcd.
func runMaster(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("master", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cfg master.Config
	var etcdServers string
	fs.StringVar(&cfg.DataDir, "data-dir", "/var/lib/hoist/master", "state directory (the embedded etcd lives in DIR/etcd)")
	fs.StringVar(&etcdServers, "etcd-servers", "", "comma-separated client URLs of an external etcd cluster (default: run etcd embedded)")
	fs.StringVar(&cfg.EtcdClientURL, "etcd-client-url", master.DefaultEtcdClientURL, "client URL of the embedded etcd")
	fs.StringVar(&cfg.EtcdPeerURL, "etcd-peer-url", master.DefaultEtcdPeerURL, "peer URL of the embedded etcd")
	fs.StringVar(&cfg.ServiceCIDR, "service-cidr", master.DefaultServiceCIDR, "range service ClusterIPs are allocated from")
	fs.StringVar(&cfg.NodePortRange, "service-node-port-range", master.DefaultNodePortRange, "range NodePorts are allocated from")
	fs.StringVar(&cfg.InsecureAddress, "insecure-address", master.DefaultInsecureAddress,
		"plain-HTTP, unauthenticated API address (stop-gap until TLS and authentication are wired in; keep it on loopback)")
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("master: %v\n%s", err, masterUsage)}
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Sprintf("master: unexpected arguments %q\n%s", fs.Args(), masterUsage)}
	}
	if etcdServers != "" {
		cfg.EtcdServers = strings.Split(etcdServers, ",")
	}
	return master.Run(ctx, cfg)
}
