// Package up runs a single-machine hoist cluster in one process: the master
// (embedded etcd), and for this machine a kubelet, flanneld (kube subnet
// manager) and the service proxy, all joining the master through the same
// join API and credentials a remote node uses, so the one-machine cluster
// has the shape of a multi-node one.
package up

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hoist-project/hoist/flannel/config"
	"github.com/hoist-project/hoist/flannel/metrics"
	"github.com/hoist-project/hoist/kubelet"
	"github.com/hoist-project/hoist/master"
	"github.com/hoist-project/hoist/master/join"
	"github.com/hoist-project/hoist/packaging/images"
	"github.com/hoist-project/hoist/proxy"
)

// Config of a single-machine cluster.
type Config struct {
	DataDir           string // everything lives under it
	NodeName          string // default: the host name
	SecureAddress     string // API address (default master.DefaultSecureAddress)
	ClusterCIDR       string // pod network of the cluster (default master.DefaultClusterCIDR)
	ServiceCIDR       string // ClusterIP range (default master.DefaultServiceCIDR)
	ContainerdAddress string
	CNIBinDir         string // default: <dir of the executable>/cni
	BinDir            string // holds pause and testbox (default: dir of the executable)
	CgroupParent      string // default kubepods
	// Network: flanneld's public interface/IP (default: the default
	// route's) and backend (default vxlan).
	Iface    string
	PublicIP netip.Addr
	Backend  string
	// ProxyMode is the service proxy's data path (default iptables).
	ProxyMode string
	Stdout    io.Writer // the kubectl hint; default os.Stdout
	Log       *slog.Logger

	// StopPods makes the kubelet stop every pod before Run returns, within
	// StopPodsTimeout (default kubelet.DefaultStopPodsTimeout). Off: pods
	// keep running and the next Run adopts them.
	StopPods        bool
	StopPodsTimeout time.Duration
}

func (c *Config) defaults() error {
	if c.DataDir == "" {
		return errors.New("--data-dir is required")
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return err
	}
	c.DataDir = abs
	if c.NodeName == "" {
		if c.NodeName, err = os.Hostname(); err != nil {
			return fmt.Errorf("node name: %w", err)
		}
	}
	if c.SecureAddress == "" {
		c.SecureAddress = master.DefaultSecureAddress
	}
	if c.BinDir == "" || c.CNIBinDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("locate the hoist executable: %w", err)
		}
		if c.BinDir == "" {
			c.BinDir = filepath.Dir(exe)
		}
		if c.CNIBinDir == "" {
			c.CNIBinDir = filepath.Join(filepath.Dir(exe), "cni")
		}
	}
	if c.ClusterCIDR == "" {
		c.ClusterCIDR = master.DefaultClusterCIDR
	}
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = master.DefaultServiceCIDR
	}
	if c.Backend == "" {
		c.Backend = config.VXLAN
	}
	if c.ProxyMode == "" {
		c.ProxyMode = proxy.ModeIPTables
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return nil
}

// Preflight refuses, with one line, CIDRs that overlap a route of the
// current network namespace and ports that are taken.
func Preflight(cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	routes, err := hostRoutes()
	if err != nil {
		return err
	}
	if err := checkRoutes(routes, map[string]string{
		"--cluster-cidr": cfg.ClusterCIDR, "--service-cidr": cfg.ServiceCIDR,
	}); err != nil {
		return err
	}
	if _, err := cfg.networkConfig(); err != nil {
		return err
	}
	return checkPorts(map[string]string{
		"API":              cfg.SecureAddress,
		"etcd client":      hostOf(master.DefaultEtcdClientURL),
		"etcd peer":        hostOf(master.DefaultEtcdPeerURL),
		"flanneld healthz": metrics.DefaultAddress,
		"proxy healthz":    proxy.DefaultHealthzAddress,
		"proxy metrics":    proxy.DefaultMetricsAddress,
	})
}

func hostOf(rawURL string) string {
	u, _ := url.Parse(rawURL)
	return u.Host
}

// Run preflights, then runs master, kubelet, flanneld and the proxy until
// ctx ends. Pods keep running when it returns (the next Run adopts them)
// unless cfg.StopPods is set.
func Run(ctx context.Context, cfg Config) error {
	if err := Preflight(cfg); err != nil {
		return err
	}
	_ = cfg.defaults() // already checked by Preflight; fills cfg here too
	imageDir := filepath.Join(cfg.DataDir, "images")
	if _, err := images.Build(ctx, images.BuildOptions{OutDir: imageDir, BinDir: cfg.BinDir}); err != nil {
		return fmt.Errorf("build images: %w", err) // names the missing binary and says to run make build
	}
	if err := checkCNIPlugins(cfg.CNIBinDir); err != nil {
		return err
	}

	g, ctx := errgroup.WithContext(ctx)
	serving := make(chan master.Serving, 1)
	g.Go(func() error {
		return master.Run(ctx, master.Config{
			DataDir: cfg.DataDir, SecureAddress: cfg.SecureAddress, Stdout: io.Discard,
			ClusterCIDR: cfg.ClusterCIDR, ServiceCIDR: cfg.ServiceCIDR,
			Serving: func(s master.Serving) { serving <- s },
		})
	})
	var info master.Serving
	select {
	case info = <-serving:
	case <-ctx.Done():
		return g.Wait() // the master failed (or we were stopped) before serving
	}
	node, err := joinNode(ctx, cfg, info)
	if err != nil {
		return stopWith(g, err)
	}
	confDir := filepath.Join(cfg.DataDir, "cni", "net.d")
	g.Go(func() error {
		return kubelet.Run(ctx, kubelet.Config{
			NodeName: cfg.NodeName, RootDir: filepath.Join(cfg.DataDir, "kubelet"),
			ContainerdAddress: cfg.ContainerdAddress, ContainerdNamespace: "k8s.hoist",
			CNIConfDir: confDir, CNIBinDirs: []string{cfg.CNIBinDir},
			ImageDir: imageDir, LogRoot: filepath.Join(cfg.DataDir, "pods-logs"),
			CgroupParent: cfg.CgroupParent, Client: node.client, Log: cfg.Log,
			StopPods: cfg.StopPods, StopPodsTimeout: cfg.StopPodsTimeout,
		})
	})
	g.Go(func() error { return runFlanneld(ctx, cfg, node.client, confDir) })
	g.Go(func() error { return runProxy(ctx, cfg, node.kubeconfig) })
	fmt.Fprintf(cfg.Stdout, "hoist up: cluster serving at %s; node %s joined.\nUse:\n  kubectl --kubeconfig %s get nodes\n",
		info.LocalURL, cfg.NodeName, info.AdminKubeconfig)
	return g.Wait()
}

// stopWith ends the group's work after a failure in Run itself.
func stopWith(g *errgroup.Group, err error) error {
	g.Go(func() error { return err }) // cancels the group's context
	if werr := g.Wait(); werr != nil && !errors.Is(werr, err) {
		return fmt.Errorf("%w (and %v)", err, werr)
	}
	return err
}

// joinedNode is the built-in node's identity on its master.
type joinedNode struct {
	kubeconfig string // <data-dir>/node/kubelet.kubeconfig
	client     kubernetes.Interface
}

// joinNode joins the built-in node exactly as a remote node would and
// returns its kubeconfig and a clientset with the node's credentials.
func joinNode(ctx context.Context, cfg Config, info master.Serving) (joinedNode, error) {
	kc, err := join.Join(ctx, join.Config{
		Server: info.AdvertisedURL, Token: info.JoinToken, CACertHash: info.CACertHash,
		NodeName: cfg.NodeName, Dir: filepath.Join(cfg.DataDir, "node"),
	})
	if err != nil {
		return joinedNode{}, fmt.Errorf("join the built-in node: %w", err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		return joinedNode{}, fmt.Errorf("node kubeconfig %s: %w", kc, err)
	}
	// The node authorizer decodes what a node creates as JSON.
	rc.ContentType = "application/json"
	client, err := kubernetes.NewForConfig(rc)
	return joinedNode{kubeconfig: kc, client: client}, err
}
