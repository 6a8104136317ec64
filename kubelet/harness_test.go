package kubelet

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/namespaces"
	v1 "k8s.io/api/core/v1"

	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/internal/testenv/ctrdtest"
	"github.com/hoist-project/hoist/kubelet/backoff"
	"github.com/hoist-project/hoist/kubelet/runtime"
	"github.com/hoist-project/hoist/kubelet/runtime/crilog"
	"github.com/hoist-project/hoist/packaging/images"
)

// TestMain doubles as the CRI logging driver: containerd's shim runs this
// test binary as `<binary> kubelet --log-driver=FILE` for every container.
func TestMain(m *testing.M) {
	if path, ok := crilog.DriverPath(os.Args[1:]); ok {
		crilog.RunDriver(path)
	}
	os.Exit(m.Run())
}

// suite is what the integration subtests share: one private containerd,
// image archives built once, hoist's own CNI plugins.
type suite struct {
	ctrd     *ctrdtest.Containerd
	imageDir string
	cniBin   string
}

func newSuite(t *testing.T) *suite {
	testenv.RequireRoot(t)
	d := ctrdtest.StartContainerd(t)
	pause := testenv.Binary(t, "pause")
	testenv.Binary(t, "testbox")
	imageDir := t.TempDir()
	if _, err := images.Build(context.Background(), images.BuildOptions{OutDir: imageDir, BinDir: filepath.Dir(pause)}); err != nil {
		t.Fatalf("build images: %v", err)
	}
	bridge := testenv.Binary(t, "cni/bridge")
	testenv.Binary(t, "cni/host-local")
	testenv.Binary(t, "cni/loopback")
	return &suite{ctrd: d, imageDir: imageDir, cniBin: filepath.Dir(bridge)}
}

// node is one kubelet under test with its own "host" netns (the bridge lives
// there, never in the root netns), containerd namespace, dirs and subnet.
type node struct {
	t         *testing.T
	s         *suite
	name      string
	cfg       Config
	hostNS    string
	ipamDir   string
	manifests string
	subnet    string
	logs      *syncBuffer
	statuses  *statusRecorder

	cancel context.CancelFunc
	done   chan error
}

func (s *suite) newNode(t *testing.T, subnetIdx int) *node {
	t.Helper()
	dir := t.TempDir()
	n := &node{
		t: t, s: s, name: "n" + strings.ToLower(testenv.UniqueName("")),
		manifests: filepath.Join(dir, "manifests"), ipamDir: filepath.Join(dir, "ipam"),
		subnet: fmt.Sprintf("10.250.%d", subnetIdx), logs: &syncBuffer{}, statuses: newStatusRecorder(),
	}
	nsName := testenv.UniqueName("hst-kh")
	hostNS, err := nsutil.CreateNamed(nsName)
	if err != nil {
		t.Fatal(err)
	}
	n.hostNS = hostNS
	confDir := filepath.Join(dir, "net.d")
	for _, d := range []string{n.manifests, confDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"hst-test","plugins":[{"type":"bridge","bridge":%q,
"isGateway":true,"ipMasq":false,"ipam":{"type":"host-local","ranges":[[{"subnet":"%s.0/24"}]],"dataDir":%q}}]}`,
		testenv.UniqueName("hst"), n.subnet, n.ipamDir)
	if err := os.WriteFile(filepath.Join(confDir, "10-test.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cgroupParent := testenv.UniqueName("hoist-kubepods")
	n.cfg = Config{
		NodeName: n.name, RootDir: filepath.Join(dir, "root"), ManifestDir: n.manifests,
		ContainerdAddress: s.ctrd.Address, ContainerdNamespace: s.ctrd.Namespace + "-" + n.name,
		CNIConfDir: confDir, CNIBinDirs: []string{s.cniBin}, CNIHostNetNS: hostNS,
		ImageDir: s.imageDir, LogRoot: filepath.Join(dir, "logs"), CgroupParent: cgroupParent,
		HostIP: n.subnet + ".1", Resync: 2 * time.Second, Housekeeping: 200 * time.Millisecond,
		ManifestInterval: 200 * time.Millisecond,
		Backoff:          backoff.Policy{Initial: 200 * time.Millisecond, Max: time.Second, ResetAfter: time.Minute},
		StatusSink:       n.statuses,
		Log:              slog.New(slog.NewTextHandler(n.logs, nil)),
	}
	t.Cleanup(func() {
		n.teardown()
		if err := runtime.RemoveCgroupParent(cgroupParent); err != nil {
			t.Errorf("remove cgroup parent: %v", err)
		}
		if err := nsutil.DeleteNamed(nsName); err != nil { // takes the bridge with it
			t.Errorf("delete host netns: %v", err)
		}
		if t.Failed() {
			t.Logf("kubelet log:\n%s", n.logs.String())
		}
	})
	return n
}

func (n *node) start() {
	n.t.Helper()
	if n.cancel != nil {
		n.t.Fatal("kubelet already running")
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan error, 1)
	go func() { n.done <- Run(ctx, n.cfg) }()
}

func (n *node) stop() {
	n.t.Helper()
	if n.cancel == nil {
		return
	}
	n.cancel()
	select {
	case err := <-n.done:
		if err != nil {
			n.t.Errorf("kubelet returned %v", err)
		}
	case <-time.After(30 * time.Second):
		n.t.Error("kubelet did not stop within 30s")
	}
	n.cancel = nil
}

// teardown removes every pod through the kubelet itself (empty manifest dir)
// and checks that nothing is left.
func (n *node) teardown() {
	entries, _ := os.ReadDir(n.manifests)
	for _, e := range entries {
		os.Remove(filepath.Join(n.manifests, e.Name()))
	}
	if n.cancel == nil {
		n.start()
	}
	n.waitClean(60 * time.Second)
	n.stop()
}

// waitImported waits until the kubelet has imported the air-gap images and
// entered its loop (so latencies measured afterwards exclude the import).
func (n *node) waitImported() {
	n.t.Helper()
	waitFor(n.t, 60*time.Second, "kubelet started", func() (bool, string) {
		return strings.Contains(n.logs.String(), "kubelet started"), n.logs.String()
	})
}

func (n *node) write(name, content string) {
	n.t.Helper()
	tmp := filepath.Join(n.manifests, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		n.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(n.manifests, name)); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) remove(name string) {
	n.t.Helper()
	if err := os.Remove(filepath.Join(n.manifests, name)); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) podName(name string) string { return name + "-" + n.name }

func (n *node) ctx() context.Context {
	return namespaces.WithNamespace(context.Background(), n.cfg.ContainerdNamespace)
}

// inventory counts what the node owns in the kernel and containerd.
type inventory struct {
	containers []string // ids
	netns      []string
	leases     []string
	sandboxes  []string // checkpoints
}

func (n *node) inventory() inventory {
	n.t.Helper()
	var inv inventory
	ctrs, err := n.s.ctrd.Client().Containers(n.ctx())
	if err != nil {
		n.t.Fatal(err)
	}
	ownNetns := map[string]bool{}
	for _, c := range ctrs {
		inv.containers = append(inv.containers, c.ID())
		ownNetns["hoist-"+c.ID()[:24]] = true
	}
	cps, _ := os.ReadDir(filepath.Join(n.cfg.RootDir, "sandboxes"))
	for _, cp := range cps {
		inv.sandboxes = append(inv.sandboxes, cp.Name())
		ownNetns["hoist-"+strings.TrimSuffix(cp.Name(), ".json")[:24]] = true
	}
	names, _ := nsutil.ListNamed()
	for _, name := range names {
		if ownNetns[name] {
			inv.netns = append(inv.netns, name)
		}
	}
	leases, _ := os.ReadDir(filepath.Join(n.ipamDir, "hst-test"))
	for _, l := range leases {
		if strings.HasPrefix(l.Name(), n.subnet) {
			inv.leases = append(inv.leases, l.Name())
		}
	}
	return inv
}

func (n *node) waitClean(timeout time.Duration) {
	n.t.Helper()
	waitFor(n.t, timeout, "node clean (no containers, netns, leases, checkpoints)", func() (bool, string) {
		inv := n.inventory()
		return len(inv.containers)+len(inv.netns)+len(inv.leases)+len(inv.sandboxes) == 0, fmt.Sprintf("%+v", inv)
	})
}

// waitRunning waits until the pod's status is Running with all containers
// running and returns it.
func (n *node) waitRunning(name string) v1.PodStatus {
	n.t.Helper()
	var st v1.PodStatus
	waitFor(n.t, 60*time.Second, name+" Running", func() (bool, string) {
		var ok bool
		st, ok = n.statuses.get(n.podName(name))
		if !ok {
			return false, "no status yet"
		}
		for _, c := range st.ContainerStatuses {
			if c.State.Running == nil {
				return false, fmt.Sprintf("container %s: %+v", c.Name, c.State)
			}
		}
		return st.Phase == v1.PodRunning && st.PodIP != "", fmt.Sprintf("phase %s ip %q", st.Phase, st.PodIP)
	})
	return st
}

// httpGet fetches url from the node's host netns (where the bridge is).
func (n *node) httpGet(url string) (string, error) { return testenv.HTTPGetFrom(n.hostNS, url) }

func (n *node) readLog(pod, uid, container string, restart int) string {
	b, _ := os.ReadFile(filepath.Join(n.cfg.LogRoot, "default_"+n.podName(pod)+"_"+uid, container, fmt.Sprintf("%d.log", restart)))
	return string(b)
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type statusRecorder struct {
	mu    sync.Mutex
	last  map[string]v1.PodStatus
	pods  map[string]*v1.Pod
	ready map[string][]v1.ConditionStatus // Ready condition per status change, in order
	calls map[string]int                  // status changes reported per pod
	// waiting reasons of each pod's first container, consecutive duplicates folded
	waiting map[string][]string
}

func newStatusRecorder() *statusRecorder {
	return &statusRecorder{last: map[string]v1.PodStatus{}, pods: map[string]*v1.Pod{}, ready: map[string][]v1.ConditionStatus{}, calls: map[string]int{}, waiting: map[string][]string{}}
}

func (r *statusRecorder) PodStatusChanged(pod *v1.Pod, st v1.PodStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last[pod.Name] = st
	r.pods[pod.Name] = pod
	r.calls[pod.Name]++
	if cs := st.ContainerStatuses; len(cs) > 0 && cs[0].State.Waiting != nil {
		if h := r.waiting[pod.Name]; len(h) == 0 || h[len(h)-1] != cs[0].State.Waiting.Reason {
			r.waiting[pod.Name] = append(h, cs[0].State.Waiting.Reason)
		}
	}
	for _, c := range st.Conditions {
		if c.Type == v1.PodReady {
			if h := r.ready[pod.Name]; len(h) == 0 || h[len(h)-1] != c.Status {
				r.ready[pod.Name] = append(h, c.Status)
			}
		}
	}
}

func (r *statusRecorder) count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[name]
}

// readyHistory is the sequence of distinct Ready condition values seen.
func (r *statusRecorder) readyHistory(name string) []v1.ConditionStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]v1.ConditionStatus(nil), r.ready[name]...)
}

// waitingHistory is the sequence of distinct waiting reasons of the pod's
// first container.
func (r *statusRecorder) waitingHistory(name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.waiting[name]...)
}

func (r *statusRecorder) get(name string) (v1.PodStatus, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.last[name]
	return st, ok
}

func (r *statusRecorder) pod(name string) *v1.Pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pods[name]
}

type syncBuffer = testenv.SyncBuffer
