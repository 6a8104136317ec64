package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/hoist-project/hoist/internal/cni/nodeconf"
	"github.com/hoist-project/hoist/internal/fabric"
	"github.com/hoist-project/hoist/internal/fabric/record"
	"github.com/hoist-project/hoist/master/join"
	"github.com/hoist-project/hoist/master/pki"
	"github.com/hoist-project/hoist/packaging/images"
	"github.com/hoist-project/hoist/proxy/ebpf"
)

// cniPlugins are the plugins every node's network config needs.
var cniPlugins = []string{"flannel", "bridge", "host-local", "loopback", "portmap"}

// Up creates the cluster and returns once every node is Ready; its
// processes keep running detached. On failure it removes what it created
// (the logs stay under <data-dir>/logs).
func Up(ctx context.Context, cfg Config) (err error) {
	if err := cfg.defaults(); err != nil {
		return err
	}
	if err := preflight(&cfg); err != nil {
		return err
	}
	l := layout{cfg.DataDir}
	sf := &stateFile{path: l.statePath(), state: State{
		DataDir: cfg.DataDir, Fabric: FabricName(cfg.DataDir), FabricStateDir: l.fabricDir(),
		ContainerdAddress: cfg.ContainerdAddress, CNIBinDir: cfg.CNIBinDir,
	}}
	if err := sf.update(func(*State) {}); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, derr := Down(context.WithoutCancel(ctx), cfg.DataDir)
			err = fmt.Errorf("%w\n(removed what was created; logs are under %s)", err, l.logDir())
			if derr != nil {
				err = fmt.Errorf("%w\ncleanup failed too: %v: run `hoist cluster down --data-dir %s`", err, derr, cfg.DataDir)
			}
		}
	}()
	r := &upRun{cfg: &cfg, l: l, sf: sf}
	return r.run(ctx)
}

// preflight names the missing piece before anything is created.
func preflight(c *Config) error {
	if _, err := os.Stat(layout{c.DataDir}.statePath()); err == nil {
		st, lerr := Load(c.DataDir)
		if lerr == nil {
			for _, p := range st.Processes {
				if p.Running() {
					return fmt.Errorf("a cluster already runs under %s (%s is pid %d): use it, or remove it with `hoist cluster down --data-dir %s`", c.DataDir, p.Name, p.PID, c.DataDir)
				}
			}
		}
		return fmt.Errorf("%s holds the remains of an earlier cluster: remove them with `hoist cluster down --data-dir %s`", c.DataDir, c.DataDir)
	}
	for _, p := range cniPlugins {
		if fi, err := os.Stat(filepath.Join(c.CNIBinDir, p)); err != nil || fi.IsDir() {
			return fmt.Errorf("no CNI plugin %s in %s: run `make build` or pass --cni-bin-dir", p, c.CNIBinDir)
		}
	}
	if _, err := os.Stat(c.ContainerdAddress); err != nil {
		return fmt.Errorf("containerd socket %s: %w (start containerd or pass --containerd-address)", c.ContainerdAddress, err)
	}
	if c.SubnetManager == SubnetManagerEtcd {
		return lookEtcd(c)
	}
	return nil
}

// upRun is one run of Up.
type upRun struct {
	cfg   *Config
	l     layout
	sf    *stateFile
	procs []*started
}

func (r *upRun) run(ctx context.Context) error {
	c, l := r.cfg, r.l
	if _, err := images.Build(ctx, images.BuildOptions{OutDir: l.imageDir(), BinDir: c.BinDir}); err != nil {
		return fmt.Errorf("build images: %w", err)
	}
	var cgroupV2 string
	if c.ProxyMode == ProxyEBPF {
		var err error
		if cgroupV2, err = ebpf.CgroupV2Root(); err != nil {
			return fmt.Errorf("--proxy-mode ebpf needs a cgroup v2 hierarchy: %w", err)
		}
	}
	st := r.sf.snapshot()
	fab, err := createFabric(ctx, st, c.Nodes)
	if err != nil {
		return err
	}
	c.Log.Info("fabric created", "name", fab.Name(), "subnet", fab.Subnet(), "hostIP", fab.HostIP())
	err = r.sf.update(func(s *State) {
		s.HostIP = fab.HostIP()
		s.APIServer = "https://" + hostPort(fab.HostIP(), c.APIPort)
		for k, fn := range fab.Nodes() {
			n := nodeState(l, s.Fabric, k, fn)
			if c.ProxyMode == ProxyEBPF {
				n.ProxyCgroup = filepath.Join(cgroupV2, n.CgroupParent)
			}
			s.Nodes = append(s.Nodes, n)
		}
	})
	if err != nil {
		return err
	}
	st = r.sf.snapshot()

	// The token exists before the master starts, so the master adopts it.
	if _, err := join.EnsureToken(l.masterDir()); err != nil {
		return err
	}
	m, err := r.start("master", "", masterArgv(c, l, &st))
	if err != nil {
		return err
	}
	admin, err := waitMaster(ctx, l, m, c.ReadyTimeout)
	if err != nil {
		return err
	}
	c.Log.Info("master serving", "server", st.APIServer, "log", m.Log)
	var flannelEtcd string
	if c.SubnetManager == SubnetManagerEtcd {
		argv, endpoint := flannelEtcdArgv(c, l, &st)
		p, err := r.start("flannel-etcd", "", argv)
		if err != nil {
			return err
		}
		if err := putFlannelConfig(ctx, c, endpoint, p); err != nil {
			return err
		}
		flannelEtcd = endpoint
	}
	token, caHash, err := joinCredentials(l)
	if err != nil {
		return err
	}
	for _, n := range st.Nodes {
		if err := r.startNode(ctx, n, st.APIServer, token, caHash, flannelEtcd); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
		c.Log.Info("node joined; kubelet, flanneld and proxy started", "node", n.Name, "ip", n.IP, "netns", n.Netns)
	}
	if err := r.waitReady(ctx, admin, st.Nodes); err != nil {
		return err
	}
	kc, err := os.ReadFile(filepath.Join(l.masterDir(), pki.AdminKubeconfigFile))
	if err != nil {
		return err
	}
	if err := os.WriteFile(l.adminKubeconfig(), kc, 0o600); err != nil {
		return err
	}
	r.printUsage(st)
	return nil
}

// createFabric creates the cluster's fabric with its record under the data
// dir, not among the sweeper's records: the fabric outlives `up`, whose pid
// the record names, and `hoist cluster down --stale` must not take it for a
// leftover. Creation still holds the lock of the shared record dir, so the
// subnet choice sees every fabric being created at the same time.
func createFabric(ctx context.Context, st State, nodes int) (*fabric.Fabric, error) {
	unlock, err := record.Lock(fabric.DefaultStateDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return fabric.Create(ctx, fabric.Config{Name: st.Fabric, Nodes: nodes, StateDir: st.FabricStateDir})
}

// start starts a detached process (in node's netns unless node is "") and
// records it.
func (r *upRun) start(name, node string, argv []string) (*started, error) {
	netns := ""
	if node != "" {
		st := r.sf.snapshot()
		n, err := st.Node(node)
		if err != nil {
			return nil, err
		}
		netns = n.NetnsPath
	}
	p, err := startDetached(name, netns, r.l.logPath(name), argv)
	if err != nil {
		return nil, err
	}
	p.Node = node
	r.procs = append(r.procs, p)
	return p, r.sf.update(func(s *State) { s.Processes = append(s.Processes, p.Process) })
}

// startNode joins n to the master through the join API (as a remote node
// would), writes its CNI config and starts its daemons.
func (r *upRun) startNode(ctx context.Context, n NodeState, server, token, caHash, flannelEtcd string) error {
	dirs := []string{n.Dirs.KubeletRoot, n.Dirs.PodLogs, n.Dirs.CNIIPAMDir, n.Dirs.CNIFlannel}
	if n.ProxyCgroup != "" {
		dirs = append(dirs, n.ProxyCgroup) // the kubelet puts the node's pods below it
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	kc, err := join.Join(ctx, join.Config{Server: server, Token: token, CACertHash: caHash, NodeName: n.Name, Dir: n.Dirs.Root})
	if err != nil {
		return err
	}
	if kc != n.Dirs.Kubeconfig {
		return fmt.Errorf("join wrote %s, expected %s", kc, n.Dirs.Kubeconfig)
	}
	if err := addServiceRoute(n, r.cfg.ServiceCIDR); err != nil {
		return err
	}
	if _, err := nodeconf.Write(n.Dirs.CNIConfDir, n.cniPaths()); err != nil {
		return fmt.Errorf("write CNI config: %w", err)
	}
	for _, p := range nodeProcesses(r.cfg, n, r.l.imageDir(), flannelEtcd) {
		if _, err := r.start(p.name, n.Name, p.argv); err != nil {
			return err
		}
	}
	return nil
}

// waitReady waits for every node's Ready condition, failing early with the
// log of a process that exits.
func (r *upRun) waitReady(ctx context.Context, admin kubernetes.Interface, nodes []NodeState) error {
	notReady := "no node listed yet"
	err := poll(ctx, r.cfg.ReadyTimeout, r.procs, func() bool {
		list, err := admin.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			notReady = err.Error()
			return false
		}
		ready := map[string]bool{}
		for _, n := range list.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == v1.NodeReady && cond.Status == v1.ConditionTrue {
					ready[n.Name] = true
				}
			}
		}
		var missing []string
		for _, n := range nodes {
			if !ready[n.Name] {
				missing = append(missing, n.Name)
			}
		}
		notReady = "not Ready: " + strings.Join(missing, ", ")
		return len(missing) == 0
	})
	if err != nil {
		return fmt.Errorf("waiting for the nodes to become Ready: %w (%s; see the kubelet logs under %s)", err, notReady, r.l.logDir())
	}
	return nil
}

func (r *upRun) printUsage(st State) {
	var names []string
	for _, n := range st.Nodes {
		names = append(names, n.Name)
	}
	fmt.Fprintf(r.cfg.Stdout, `hoist cluster: master at %s, nodes %s Ready.
Use:
  kubectl --kubeconfig %s get nodes
  hoist cluster exec --data-dir %s %s -- ip addr    # a command inside a node's network namespace
  hoist cluster down --data-dir %s
Logs: %s
`, st.APIServer, strings.Join(names, ", "), r.l.adminKubeconfig(), st.DataDir, names[0], st.DataDir, r.l.logDir())
}
