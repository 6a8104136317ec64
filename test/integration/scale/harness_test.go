package scale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/kubelet/hollow"
)

// master is a `hoist master` subprocess on fixed loopback ports, so that
// it can be killed and restarted on the same data dir and address.
type master struct {
	t       testing.TB
	args    []string
	dataDir string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	// Kubeconfig is the admin kubeconfig; Client uses it.
	Kubeconfig string
	Rest       *rest.Config
	Client     kubernetes.Interface
}

// startMaster runs `hoist master` with an embedded etcd (unless extra
// names --etcd-servers) until the test ends.
func startMaster(t testing.TB, extra ...string) *master {
	t.Helper()
	dir := t.TempDir()
	m := &master{t: t, dataDir: filepath.Join(dir, "master"), logPath: filepath.Join(dir, "master.log")}
	m.args = append([]string{"master", "--data-dir", m.dataDir,
		"--secure-address", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		"--etcd-client-url", testenv.FreeLoopbackURL(t), "--etcd-peer-url", testenv.FreeLoopbackURL(t)}, extra...)
	m.Kubeconfig = filepath.Join(m.dataDir, "admin.kubeconfig")
	m.start()
	t.Cleanup(m.stop)
	return m
}

// start launches the process and waits until the API serves /readyz.
func (m *master) start() {
	t := m.t
	t.Helper()
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	m.cmd = exec.Command(testenv.Binary(t, "hoist"), m.args...)
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	m.done = done
	go func() { _ = m.cmd.Wait(); logf.Close(); close(done) }()
	waitFor(t, "hoist master serving (log: "+m.logPath+")", 90*time.Second, func() (bool, string) {
		select {
		case <-done:
			t.Fatalf("hoist master exited:\n%s", m.Log())
		default:
		}
		rc, err := clientcmd.BuildConfigFromFlags("", m.Kubeconfig)
		if err != nil {
			return false, err.Error()
		}
		rc.QPS, rc.Burst = 500, 1000
		c, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return false, err.Error()
		}
		body, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
		if err != nil {
			return false, err.Error()
		}
		m.Rest, m.Client = rc, c
		return strings.TrimSpace(string(body)) == "ok", string(body)
	})
}

// kill9 kills the process without any chance to clean up (embedded etcd
// included) and waits for it to be gone.
func (m *master) kill9() {
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.done
}

// stop ends the process with SIGTERM (SIGKILL after 20 s).
func (m *master) stop() {
	select {
	case <-m.done:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(20 * time.Second):
		m.kill9()
	}
}

// Log is the process output so far (all runs).
func (m *master) Log() string {
	b, _ := os.ReadFile(m.logPath)
	return string(b)
}

// startHollow registers count hollow nodes named prefix0.. on m until the
// test ends; they renew their Leases every second.
func startHollow(t testing.TB, m *master, prefix string, count int) *hollow.Nodes {
	t.Helper()
	return startHollowEvery(t, m, prefix, count, time.Second)
}

// startHollowEvery is startHollow with a Lease interval.
func startHollowEvery(t testing.TB, m *master, prefix string, count int, every time.Duration) *hollow.Nodes {
	t.Helper()
	client, err := hollow.NewClientForConfig(m.Rest)
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "hollow.log"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := hollow.Start(context.Background(), hollow.Config{
		Client: client, Count: count, NamePrefix: prefix, LeaseInterval: every,
		Log: slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop(); logf.Close() })
	mine := map[string]bool{}
	for _, name := range n.Names() {
		mine[name] = true
	}
	waitFor(t, fmt.Sprintf("%d %s* nodes Ready", count, prefix), 120*time.Second, func() (bool, string) {
		list, err := m.Client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{LabelSelector: hollow.LabelHollow + "=true"})
		if err != nil {
			return false, err.Error()
		}
		ready := 0
		for i := range list.Items {
			if mine[list.Items[i].Name] && nodeReady(&list.Items[i]) {
				ready++
			}
		}
		return ready == count, fmt.Sprintf("%d ready", ready)
	})
	return n
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitFor is testenv.WaitFor for conditions that report a detail.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	testenv.WaitFor(t, timeout, what, func() error {
		if ok, detail := cond(); !ok {
			return errors.New(detail)
		}
		return nil
	})
}
