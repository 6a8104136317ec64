// Package up runs a single-machine hoist cluster in one process: the master
// (embedded etcd) and a kubelet for this machine that joins it through the
// same join API a remote node uses, on an interim bridge + host-local CNI
// network until flanneld joins `hoist up`.
package up

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hoist-project/hoist/kubelet"
	"github.com/hoist-project/hoist/master"
	"github.com/hoist-project/hoist/master/join"
	"github.com/hoist-project/hoist/packaging/images"
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
	// PodCIDR is used when the master's node IPAM has not given the node a
	// podCIDR within PodCIDRWait (or always, when ForcePodCIDR).
	PodCIDR      string
	ForcePodCIDR bool
	PodCIDRWait  time.Duration // default 20 s
	CgroupParent string        // default kubepods
	Stdout       io.Writer     // the kubectl hint; default os.Stdout
	Log          *slog.Logger
}

// DefaultPodCIDR is the node's pod range when node IPAM gives none.
const DefaultPodCIDR = "10.244.0.0/24"

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
	if c.PodCIDR == "" {
		c.PodCIDR = DefaultPodCIDR
	}
	if c.PodCIDRWait == 0 {
		c.PodCIDRWait = 20 * time.Second
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
		"--cluster-cidr": cfg.ClusterCIDR, "--service-cidr": cfg.ServiceCIDR, "--pod-cidr": cfg.PodCIDR,
	}); err != nil {
		return err
	}
	return checkPorts(map[string]string{
		"API":         cfg.SecureAddress,
		"etcd client": hostOf(master.DefaultEtcdClientURL),
		"etcd peer":   hostOf(master.DefaultEtcdPeerURL),
	})
}

func hostOf(rawURL string) string {
	u, _ := url.Parse(rawURL)
	return u.Host
}

// Run preflights, then runs master and kubelet until ctx ends. Pods keep
// running when it returns; the next Run adopts them.
func Run(ctx context.Context, cfg Config) error {
	if err := Preflight(cfg); err != nil {
		return err
	}
	_ = cfg.defaults() // already checked by Preflight; fills cfg here too
	imageDir := filepath.Join(cfg.DataDir, "images")
	if _, err := images.Build(ctx, images.BuildOptions{OutDir: imageDir, BinDir: cfg.BinDir}); err != nil {
		return fmt.Errorf("build images: %w", err) // names the missing binary and says to run make build
	}
	if fi, err := os.Stat(filepath.Join(cfg.CNIBinDir, "bridge")); err != nil || fi.IsDir() {
		return fmt.Errorf("no CNI bridge plugin in %s: run `make build` or pass --cni-bin-dir", cfg.CNIBinDir)
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
	client, err := joinNode(ctx, cfg, info)
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
			CgroupParent: cfg.CgroupParent, Client: client, Log: cfg.Log,
		})
	})
	g.Go(func() error {
		cidr := cfg.PodCIDR
		if !cfg.ForcePodCIDR {
			cidr = waitPodCIDR(ctx, client, cfg.NodeName, cfg.PodCIDR, cfg.PodCIDRWait, cfg.Log)
		}
		path, err := writeCNIConf(confDir, cidr, filepath.Join(cfg.DataDir, "cni", "networks"))
		if err != nil {
			return fmt.Errorf("write CNI config: %w", err)
		}
		cfg.Log.Info("interim CNI config written", "path", path, "podCIDR", cidr)
		return nil
	})
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

// joinNode joins the built-in node exactly as a remote node would and
// returns a clientset with the node's credentials.
func joinNode(ctx context.Context, cfg Config, info master.Serving) (kubernetes.Interface, error) {
	kc, err := join.Join(ctx, join.Config{
		Server: info.AdvertisedURL, Token: info.JoinToken, CACertHash: info.CACertHash,
		NodeName: cfg.NodeName, Dir: filepath.Join(cfg.DataDir, "node"),
	})
	if err != nil {
		return nil, fmt.Errorf("join the built-in node: %w", err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		return nil, fmt.Errorf("node kubeconfig %s: %w", kc, err)
	}
	// The node authorizer decodes what a node creates as JSON.
	rc.ContentType = "application/json"
	return kubernetes.NewForConfig(rc)
}

// waitPodCIDR waits for node IPAM to give the node a podCIDR (the kubelet
// registers the Node first) and falls back to def.
func waitPodCIDR(ctx context.Context, c kubernetes.Interface, node, def string, wait time.Duration, log *slog.Logger) string {
	deadline := time.Now().Add(wait)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if n, err := c.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); err == nil && n.Spec.PodCIDR != "" {
			if _, _, err := net.ParseCIDR(n.Spec.PodCIDR); err == nil {
				return n.Spec.PodCIDR
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	log.Warn("node has no podCIDR from the master; using the default", "node", node, "podCIDR", def)
	return def
}
