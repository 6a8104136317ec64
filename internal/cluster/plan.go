// Package cluster runs a multi-node hoist cluster on one machine: a master
// process in the root network namespace and N nodes, each a network
// namespace on a fabric bridge (internal/fabric) running `hoist kubelet`,
// `hoist flanneld` and `hoist proxy` as detached processes. Everything the
// cluster consists of is recorded in <data-dir>/cluster.json before it is
// created, so `hoist cluster down` works from another shell and after a
// crashed `hoist cluster up`.
package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/hoist-project/hoist/master"
)

// Flannel subnet managers and backends, proxy modes.
const (
	SubnetManagerKube = "kube"
	SubnetManagerEtcd = "etcd"
	BackendVXLAN      = "vxlan"
	BackendHostGW     = "host-gw"
	ProxyIPTables     = "iptables"
	ProxyEBPF         = "ebpf"
)

// Default ports: apart from `hoist up`'s 6443 and 12379/12380.
const (
	DefaultAPIPort             = 16443
	DefaultEtcdClientPort      = 16379
	DefaultEtcdPeerPort        = 16380
	DefaultFlannelEtcdPort     = 16381
	DefaultFlannelEtcdPeerPort = 16382
	DefaultContainerdAddress   = "/run/containerd/containerd.sock"
	MaxNodes                   = 20
)

// Config of a cluster. Zero values pick defaults.
type Config struct {
	DataDir           string // required; everything lives under it
	Nodes             int    // 1..MaxNodes
	Backend           string // flannel backend: vxlan (default) or host-gw
	SubnetManager     string // flannel subnet manager: kube (default) or etcd
	ProxyMode         string // iptables (default) or ebpf
	ContainerdAddress string // shared by all nodes, one containerd namespace each
	ClusterCIDR       string // pod network (default master.DefaultClusterCIDR)
	ServiceCIDR       string // ClusterIP range (default master.DefaultServiceCIDR)

	// Ports of the master (API on the fabric's host IP, its embedded etcd on
	// loopback) and of the etcd flannel uses with --subnet-mgr etcd.
	APIPort, EtcdClientPort, EtcdPeerPort int
	FlannelEtcdPort, FlannelEtcdPeerPort  int

	Hoist     string // the hoist executable the processes run (default: this one)
	BinDir    string // holds pause and testbox for the images (default: dir of Hoist)
	CNIBinDir string // CNI plugins (default: <dir of Hoist>/cni)
	Etcd      string // etcd executable for --subnet-mgr etcd (default: from PATH)

	ReadyTimeout time.Duration // for every node to become Ready (default 3 minutes)
	Stdout       io.Writer     // usage hint (default os.Stdout)
	Log          *slog.Logger
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
	if c.Nodes < 1 || c.Nodes > MaxNodes {
		return fmt.Errorf("--nodes %d: want 1 to %d", c.Nodes, MaxNodes)
	}
	setString(&c.Backend, BackendVXLAN)
	setString(&c.SubnetManager, SubnetManagerKube)
	setString(&c.ProxyMode, ProxyIPTables)
	setString(&c.ContainerdAddress, DefaultContainerdAddress)
	setString(&c.ClusterCIDR, master.DefaultClusterCIDR)
	setString(&c.ServiceCIDR, master.DefaultServiceCIDR)
	if c.Backend != BackendVXLAN && c.Backend != BackendHostGW {
		return fmt.Errorf("--backend %q: use vxlan or host-gw", c.Backend)
	}
	if c.SubnetManager != SubnetManagerKube && c.SubnetManager != SubnetManagerEtcd {
		return fmt.Errorf("--subnet-mgr %q: use kube or etcd", c.SubnetManager)
	}
	if c.ProxyMode != ProxyIPTables && c.ProxyMode != ProxyEBPF {
		return fmt.Errorf("--proxy-mode %q: use iptables or ebpf", c.ProxyMode)
	}
	for flag, cidr := range map[string]string{"--cluster-cidr": c.ClusterCIDR, "--service-cidr": c.ServiceCIDR} {
		if p, err := netip.ParsePrefix(cidr); err != nil || !p.Addr().Is4() {
			return fmt.Errorf("%s %q is not an IPv4 CIDR like 10.244.0.0/16", flag, cidr)
		}
	}
	ports := []struct {
		p    *int
		def  int
		flag string
	}{
		{&c.APIPort, DefaultAPIPort, "--api-port"},
		{&c.EtcdClientPort, DefaultEtcdClientPort, "--etcd-port"},
		{&c.EtcdPeerPort, DefaultEtcdPeerPort, "--etcd-peer-port"},
		{&c.FlannelEtcdPort, DefaultFlannelEtcdPort, "--flannel-etcd-port"},
		{&c.FlannelEtcdPeerPort, DefaultFlannelEtcdPeerPort, "--flannel-etcd-peer-port"},
	}
	seen := map[int]string{}
	for _, p := range ports {
		if *p.p == 0 {
			*p.p = p.def
		}
		if *p.p < 1 || *p.p > 65535 {
			return fmt.Errorf("%s %d: not a TCP port", p.flag, *p.p)
		}
		if other, dup := seen[*p.p]; dup {
			return fmt.Errorf("%s and %s are both %d: give them different ports", other, p.flag, *p.p)
		}
		seen[*p.p] = p.flag
	}
	if c.Hoist == "" {
		if c.Hoist, err = os.Executable(); err != nil {
			return fmt.Errorf("locate the hoist executable: %w", err)
		}
	}
	setString(&c.BinDir, filepath.Dir(c.Hoist))
	setString(&c.CNIBinDir, filepath.Join(filepath.Dir(c.Hoist), "cni"))
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 3 * time.Minute
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

func setString(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

// FabricName derives the fabric's name from the data dir, so two clusters
// in different directories never collide and the same directory always
// finds its own fabric again.
func FabricName(dataDir string) string {
	sum := sha256.Sum256([]byte(dataDir))
	return "c" + hex.EncodeToString(sum[:])[:7]
}

// NodeName is the Kubernetes name of the k-th node (0-based).
func NodeName(k int) string { return fmt.Sprintf("node%d", k+1) }

// layout names the files and directories of a cluster under its data dir.
type layout struct{ dir string }

func (l layout) statePath() string       { return filepath.Join(l.dir, "cluster.json") }
func (l layout) logDir() string          { return filepath.Join(l.dir, "logs") }
func (l layout) fabricDir() string       { return filepath.Join(l.dir, "fabric") }
func (l layout) masterDir() string       { return filepath.Join(l.dir, "master") }
func (l layout) flannelEtcdDir() string  { return filepath.Join(l.dir, "flannel-etcd") }
func (l layout) imageDir() string        { return filepath.Join(l.dir, "images") }
func (l layout) adminKubeconfig() string { return filepath.Join(l.dir, "admin.kubeconfig") }
func (l layout) nodesDir() string        { return filepath.Join(l.dir, "nodes") }
func (l layout) logPath(process string) string {
	return filepath.Join(l.logDir(), process+".log")
}

// nodeDirs are one node's state directories.
type nodeDirs struct {
	Root        string `json:"root"`        // <data-dir>/nodes/<node>
	Kubeconfig  string `json:"kubeconfig"`  // written by the join
	KubeletRoot string `json:"kubeletRoot"` // kubelet state (sandbox checkpoints, libcni cache)
	PodLogs     string `json:"podLogs"`
	CNIConfDir  string `json:"cniConfDir"`
	CNIIPAMDir  string `json:"cniIPAMDir"`    // host-local leases
	CNIFlannel  string `json:"cniFlannelDir"` // the flannel meta-plugin's saved delegate configs
	SubnetFile  string `json:"subnetFile"`
}

func (l layout) node(name string) nodeDirs {
	root := filepath.Join(l.nodesDir(), name)
	return nodeDirs{
		Root:        root,
		Kubeconfig:  filepath.Join(root, "kubelet.kubeconfig"),
		KubeletRoot: filepath.Join(root, "kubelet"),
		PodLogs:     filepath.Join(root, "pod-logs"),
		CNIConfDir:  filepath.Join(root, "cni", "net.d"),
		CNIIPAMDir:  filepath.Join(root, "cni", "networks"),
		CNIFlannel:  filepath.Join(root, "cni", "flannel"),
		SubnetFile:  filepath.Join(root, "subnet.env"),
	}
}
