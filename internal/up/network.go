package up

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/kubernetes"

	"github.com/hoist-project/hoist/flannel"
	"github.com/hoist-project/hoist/flannel/config"
	"github.com/hoist-project/hoist/flannel/subnet/kube"
	"github.com/hoist-project/hoist/flannel/subnetenv"
	"github.com/hoist-project/hoist/internal/cni/nodeconf"
	"github.com/hoist-project/hoist/proxy"
)

// cniPlugins are the plugins the node's network needs: the flannel
// meta-plugin (bridge in process), host-local and portmap it chains, and
// loopback the kubelet runs in every pod.
var cniPlugins = []string{"flannel", "host-local", "portmap", "loopback"}

// checkCNIPlugins names every missing plugin binary.
func checkCNIPlugins(dir string) error {
	var missing []string
	for _, p := range cniPlugins {
		if fi, err := os.Stat(filepath.Join(dir, p)); err != nil || fi.IsDir() {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("CNI plugins %s missing in %s: run `make build` or pass --cni-bin-dir", strings.Join(missing, ", "), dir)
	}
	return nil
}

// networkConfig is flanneld's network: the cluster CIDR node IPAM splits.
func (c Config) networkConfig() (config.Config, error) {
	nc, err := config.FromOptions(config.Options{Network: c.ClusterCIDR, BackendType: c.Backend})
	if err != nil {
		return nc, fmt.Errorf("--cluster-cidr/--backend: %w", err)
	}
	return nc, nil
}

// paths of the node's network state under the data dir.
func (c Config) cniPaths() nodeconf.Paths {
	return nodeconf.Paths{
		SubnetFile:  filepath.Join(c.DataDir, "flannel", "subnet.env"),
		FlannelData: filepath.Join(c.DataDir, "cni", "flannel"),
		IPAMData:    filepath.Join(c.DataDir, "cni", "networks"),
	}
}

// runFlanneld runs flanneld with the kube subnet manager on the node's
// credentials and writes the CNI config once subnet.env exists, so the
// kubelet reports the network ready only when pods can get addresses.
func runFlanneld(ctx context.Context, cfg Config, client kubernetes.Interface, confDir string) error {
	netCfg, err := cfg.networkConfig()
	if err != nil {
		return err
	}
	log := cfg.Log.With("component", "flanneld")
	store, err := kube.New(ctx, client, cfg.NodeName, netCfg, log)
	if err != nil {
		return err
	}
	paths := cfg.cniPaths()
	err = flannel.Run(ctx, flannel.Config{
		NodeName: cfg.NodeName, Iface: cfg.Iface, PublicIP: cfg.PublicIP, SubnetFile: paths.SubnetFile,
		IPMasq: true, Store: store, Log: log,
		Ready: func(env subnetenv.Env) error {
			path, err := nodeconf.Write(confDir, paths)
			if err != nil {
				return fmt.Errorf("write CNI config: %w", err)
			}
			cfg.Log.Info("CNI config written", "path", path, "podCIDR", env.Subnet)
			return nil
		},
	})
	if err != nil {
		return fmt.Errorf("flanneld: %w", err)
	}
	return nil
}

// runProxy runs the service proxy on the node's credentials.
func runProxy(ctx context.Context, cfg Config, kubeconfig string) error {
	cidr, err := netip.ParsePrefix(cfg.ClusterCIDR)
	if err != nil {
		return fmt.Errorf("--cluster-cidr %q: %w", cfg.ClusterCIDR, err)
	}
	err = proxy.Run(ctx, proxy.Config{
		Kubeconfig: kubeconfig, Mode: cfg.ProxyMode, NodeName: cfg.NodeName, ClusterCIDR: cidr.Masked(),
		HealthzAddress: proxy.DefaultHealthzAddress, MetricsAddress: proxy.DefaultMetricsAddress,
		Log: cfg.Log.With("component", "proxy"),
	})
	if err != nil {
		return fmt.Errorf("proxy (--proxy-mode %s): %w", cfg.ProxyMode, err)
	}
	return nil
}
