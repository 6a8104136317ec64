package flannel_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hoist-project/hoist/flannel/subnet/kube"
	"github.com/hoist-project/hoist/internal/fabric"
	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/master"
	"github.com/hoist-project/hoist/master/join"
)

// kubeMaster is a real hoist master serving on the fabric's host IP, so
// flanneld inside node namespaces reaches it. It can be stopped and started
// again on the same data dir and address (an API outage).
type kubeMaster struct {
	cfg     master.Config
	serving master.Serving
	admin   kubernetes.Interface
	cancel  context.CancelFunc
	done    chan error // nil while stopped
}

// startKubeMaster runs the master on etcdServer ("" = its embedded etcd).
func startKubeMaster(t *testing.T, f *fabric.Fabric, etcdServer string) *kubeMaster {
	t.Helper()
	m := &kubeMaster{cfg: master.Config{
		DataDir: t.TempDir(), EtcdClientURL: testenv.FreeLoopbackURL(t), EtcdPeerURL: testenv.FreeLoopbackURL(t),
		SecureAddress:    fmt.Sprintf("%s:%d", f.HostIP(), testenv.FreePort(t)),
		AdvertiseAddress: f.HostIP().String(), ClusterCIDR: "10.244.0.0/16", Stdout: io.Discard,
	}}
	if etcdServer != "" {
		m.cfg.EtcdServers = []string{etcdServer}
	}
	t.Cleanup(func() { m.stop(t) })
	m.start(t)
	rc, err := clientcmd.BuildConfigFromFlags("", m.serving.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if m.admin, err = kubernetes.NewForConfig(rc); err != nil {
		t.Fatal(err)
	}
	return m
}

// start runs the master and waits until it serves.
func (m *kubeMaster) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	serving := make(chan master.Serving, 1)
	cfg := m.cfg
	cfg.Serving = func(s master.Serving) { serving <- s }
	m.cancel, m.done = cancel, make(chan error, 1)
	go func(done chan<- error) { done <- master.Run(ctx, cfg) }(m.done)
	select {
	case m.serving = <-serving:
	case err := <-m.done:
		m.done = nil
		t.Fatalf("master exited: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("master not serving after 60s")
	}
}

// stop shuts the master down (API and, if embedded, etcd); its data stays.
func (m *kubeMaster) stop(t *testing.T) {
	t.Helper()
	if m.done == nil {
		return
	}
	m.cancel()
	select {
	case err := <-m.done:
		if err != nil {
			t.Errorf("master: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("master did not stop within 20s")
	}
	m.done = nil
}

// joinNode registers a Node object and returns a kubeconfig with the
// node's own credentials, the ones a kubelet (and its flanneld) use.
func (m *kubeMaster) joinNode(t *testing.T, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kc, err := join.Join(ctx, join.Config{Server: m.serving.AdvertisedURL, Token: m.serving.JoinToken,
		CACertHash: m.serving.CACertHash, NodeName: name, Dir: filepath.Join(t.TempDir(), name)})
	if err != nil {
		t.Fatalf("join %s: %v", name, err)
	}
	if _, err := m.admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
	return kc
}

// TestIntegrationKubeSubnetManagerSamePublicIP: a second node claiming a
// public IP another node publishes is refused with both names.
func TestIntegrationKubeSubnetManagerSamePublicIP(t *testing.T) {
	f := testenv.Fabric(t, 2)
	nodes := f.Nodes()
	m := startKubeMaster(t, f, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kc0, kc1 := m.joinNode(t, nodes[0].Name), m.joinNode(t, nodes[1].Name)
	mustExec(t, f, nodes[0], "ip", "link", "set", "lo", "up")
	d0 := newFlanneld(t, f, nodes[0], "--subnet-mgr", "kube", "--kubeconfig", kc0, "--iface", "eth0", "--healthz-address", "-")
	d0.Start()
	d0.Env()
	// n1 is told its public IP is n0's (an operator mistake).
	if _, err := m.admin.CoreV1().Nodes().Patch(ctx, nodes[1].Name, "application/merge-patch+json",
		[]byte(`{"metadata":{"annotations":{"`+kube.AnnotationPublicIPOverwrite+`":"`+nodes[0].IP.String()+`"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	d1 := newFlanneld(t, f, nodes[1], "--subnet-mgr", "kube", "--kubeconfig", kc1, "--iface", "eth0", "--healthz-address", "-")
	d1.Start()
	want := fmt.Sprintf("nodes %s and %s both claim public IP %s", nodes[0].Name, nodes[1].Name, nodes[0].IP)
	testenv.WaitFor(t, 30*time.Second, "the conflict error on n1", func() error {
		log, _ := os.ReadFile(d1.logPath)
		if !strings.Contains(string(log), want) {
			return fmt.Errorf("log has no %q", want)
		}
		return nil
	})
	if _, err := os.Stat(d1.subnetFile); !os.IsNotExist(err) {
		t.Fatalf("n1 wrote subnet.env despite the conflict: %v", err)
	}
}
