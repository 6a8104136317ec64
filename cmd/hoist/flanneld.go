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
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hoist-project/hoist/flannel"
	"github.com/hoist-project/hoist/flannel/config"
	"github.com/hoist-project/hoist/flannel/metrics"
	"github.com/hoist-project/hoist/flannel/subnet/etcd"
	"github.com/hoist-project/hoist/flannel/subnet/kube"
)

const flanneldUsage = `usage: hoist flanneld [--subnet-mgr etcd|kube] [--node-name NAME] [--iface NAME] [--public-ip IP]
  [--subnet-file PATH] [--ip-masq=true|false] [--resync-interval DURATION] [--healthz-address ADDR|-]
  etcd mode: [--etcd-endpoints URL[,URL...]] [--etcd-prefix PREFIX] [--subnet-lease-ttl DURATION]
  kube mode: --kubeconfig FILE [--net-conf FILE | --cluster-cidr CIDR [--backend vxlan|host-gw]
             [--vxlan-vni N] [--vxlan-port N] [--mtu N]]`

// flanneldFlags are the flags that pick and configure the lease store.
type flanneldFlags struct {
	mgr, endpoints, prefix string
	ttl                    time.Duration
	kubeconfig, netConf    string
	netOpts                config.Options
}

// runFlanneld parses flags into flannel.Config and runs the fabric daemon.
func runFlanneld(ctx context.Context, args []string) error {
	var cfg flannel.Config
	var f flanneldFlags
	fs := flag.NewFlagSet("flanneld", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.mgr, "subnet-mgr", "etcd", "subnet lease store: etcd or kube (Node.spec.podCIDR)")
	fs.StringVar(&f.endpoints, "etcd-endpoints", "http://127.0.0.1:2379", "etcd endpoints, comma-separated")
	fs.StringVar(&f.prefix, "etcd-prefix", etcd.DefaultPrefix, "etcd prefix of the network config and leases")
	fs.DurationVar(&f.ttl, "subnet-lease-ttl", etcd.DefaultTTL, "lifetime of the subnet lease without renewal")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kube mode: kubeconfig reaching the API server")
	fs.StringVar(&f.netConf, "net-conf", "", "kube mode: upstream's net-conf.json (instead of --cluster-cidr and friends)")
	fs.StringVar(&f.netOpts.Network, "cluster-cidr", "", "kube mode: the flannel network, the master's --cluster-cidr (default 10.244.0.0/16)")
	fs.StringVar(&f.netOpts.BackendType, "backend", "", "kube mode: vxlan (default) or host-gw")
	fs.IntVar(&f.netOpts.VNI, "vxlan-vni", 0, "kube mode: VXLAN VNI (default 1)")
	fs.IntVar(&f.netOpts.Port, "vxlan-port", 0, "kube mode: VXLAN UDP port (default 8472)")
	fs.IntVar(&f.netOpts.MTU, "mtu", 0, "kube mode: pod MTU (default: derived from the interface)")
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
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	switch f.mgr {
	case "etcd":
		if f.kubeconfig != "" || f.netConf != "" || f.netOpts != (config.Options{}) {
			return usageError{"flanneld: --kubeconfig, --net-conf, --cluster-cidr, --backend, --vxlan-*, --mtu are kube-mode flags: add --subnet-mgr kube (in etcd mode the network config is the etcd document)"}
		}
		return runEtcdFlanneld(ctx, cfg, f)
	case "kube":
		if cfg.NodeName == "" {
			return usageError{"flanneld: --subnet-mgr kube needs --node-name, the name the node's kubelet registered"}
		}
		netCfg, err := kubeNetworkConfig(f)
		if err != nil {
			return err
		}
		if f.kubeconfig == "" {
			return usageError{"flanneld: --subnet-mgr kube needs --kubeconfig FILE (e.g. the node's kubelet kubeconfig)"}
		}
		client, err := kubeClient(f.kubeconfig)
		if err != nil {
			return err
		}
		if cfg.Store, err = kube.New(ctx, client, cfg.NodeName, netCfg, cfg.Log); err != nil {
			return err
		}
		return flannel.Run(ctx, cfg)
	}
	return usageError{fmt.Sprintf("flanneld: --subnet-mgr %q is not available: use etcd or kube", f.mgr)}
}

func runEtcdFlanneld(ctx context.Context, cfg flannel.Config, f flanneldFlags) error {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   strings.Split(f.endpoints, ","),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return fmt.Errorf("flanneld: etcd client for %s: %w", f.endpoints, err)
	}
	defer cli.Close()
	cfg.Store = etcd.New(cli, f.prefix, f.ttl, cfg.Log)
	return flannel.Run(ctx, cfg)
}

// kubeNetworkConfig reads --net-conf or builds the config from the flags.
func kubeNetworkConfig(f flanneldFlags) (config.Config, error) {
	if f.netConf == "" {
		if f.netOpts.Network == "" {
			f.netOpts.Network = flannel.DefaultClusterCIDR
		}
		c, err := config.FromOptions(f.netOpts)
		if err != nil {
			return c, usageError{"flanneld: " + err.Error()}
		}
		return c, nil
	}
	if f.netOpts != (config.Options{}) {
		return config.Config{}, usageError{"flanneld: --net-conf and --cluster-cidr/--backend/--vxlan-*/--mtu both describe the network: use one"}
	}
	data, err := os.ReadFile(f.netConf)
	if err != nil {
		return config.Config{}, fmt.Errorf("flanneld: --net-conf: %w", err)
	}
	c, err := config.Parse(data)
	if err != nil {
		return c, fmt.Errorf("flanneld: %s: %w", f.netConf, err)
	}
	return c, nil
}

func kubeClient(kubeconfig string) (kubernetes.Interface, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("flanneld: --kubeconfig %s: %w", kubeconfig, err)
	}
	return kubernetes.NewForConfig(rc)
}
