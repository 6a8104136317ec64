package flannel_test

import (
	"context"
	"fmt"
	"io"
	"net/netip"
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
	"github.com/hoist-project/hoist/flannel/subnetenv"
	"github.com/hoist-project/hoist/internal/fabric"
	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/master"
	"github.com/hoist-project/hoist/master/join"
)

// kubeMaster is a real hoist master serving on the fabric's host IP, so
// flanneld inside node namespaces reaches it.
type kubeMaster struct {
	serving master.Serving
	admin   kubernetes.Interface
}

func startKubeMaster(t *testing.T, f *fabric.Fabric) *kubeMaster {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	serving := make(chan master.Serving, 1)
	done := make(chan error, 1)
	go func() {
		done <- master.Run(ctx, master.Config{
			DataDir: t.TempDir(), EtcdClientURL: testenv.FreeLoopbackURL(t), EtcdPeerURL: testenv.FreeLoopbackURL(t),
			SecureAddress:    fmt.Sprintf("%s:%d", f.HostIP(), testenv.FreePort(t)),
			AdvertiseAddress: f.HostIP().String(), ClusterCIDR: "10.244.0.0/16", Stdout: io.Discard,
			Serving: func(s master.Serving) { serving <- s },
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("master: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("master did not stop within 20s")
		}
	})
	m := &kubeMaster{}
	select {
	case m.serving = <-serving:
	case err := <-done:
		t.Fatalf("master exited: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("master not serving after 60s")
	}
	rc, err := clientcmd.BuildConfigFromFlags("", m.serving.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if m.admin, err = kubernetes.NewForConfig(rc); err != nil {
		t.Fatal(err)
	}
	return m
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

// TestIntegrationKubeSubnetManager runs flanneld (the built binary, kube
// subnet manager, node credentials) on a 3-node fabric against a real
// master with node IPAM: every node's subnet.env carries its
// spec.podCIDR, the annotations are published, pods on different nodes
// talk over VXLAN, a restart changes nothing, and deleting a Node removes
// its routes and FDB entries from the others.
func TestIntegrationKubeSubnetManager(t *testing.T) {
	testenv.RequireCommand(t, "iptables-restore", "iptables")
	testenv.RequireCommand(t, "bridge", "iproute2")
	f := testenv.Fabric(t, 3)
	nodes := f.Nodes()
	m := startKubeMaster(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	daemons := make([]*flanneld, len(nodes))
	for i, n := range nodes {
		kc := m.joinNode(t, n.Name)
		mustExec(t, f, n, "ip", "link", "set", "lo", "up")
		d := newFlanneld(t, f, n, "")
		d.args = []string{testenv.Binary(t, "hoist"), "flanneld", "--subnet-mgr", "kube", "--kubeconfig", kc,
			"--node-name", n.Name, "--public-ip", n.IP.String(), "--subnet-file", d.subnetFile,
			"--resync-interval", "1s", "--healthz-address", "127.0.0.1:10267"}
		d.Start()
		daemons[i] = d
	}
	envs := make([]subnetenv.Env, len(nodes))
	seen := map[netip.Prefix]string{}
	for i, d := range daemons {
		envs[i] = d.Env()
		node, err := m.admin.CoreV1().Nodes().Get(ctx, nodes[i].Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if envs[i].Subnet.Masked().String() != node.Spec.PodCIDR || envs[i].Network.String() != "10.244.0.0/16" || envs[i].MTU != f.MTU()-50 {
			t.Fatalf("%s: subnet.env %+v, want subnet = spec.podCIDR %q, network 10.244.0.0/16, MTU %d", nodes[i].Name, envs[i], node.Spec.PodCIDR, f.MTU()-50)
		}
		if other, dup := seen[envs[i].Subnet]; dup {
			t.Fatalf("%s and %s both got subnet %s", other, nodes[i].Name, envs[i].Subnet)
		}
		seen[envs[i].Subnet] = nodes[i].Name
		a := node.Annotations
		if a[kube.AnnotationKubeManaged] != "true" || a[kube.AnnotationPublicIP] != nodes[i].IP.String() || a[kube.AnnotationBackendType] != "vxlan" ||
			!strings.Contains(a[kube.AnnotationBackendData], `"VtepMAC"`) {
			t.Fatalf("%s: annotations %v", nodes[i].Name, a)
		}
		d.WaitHealthy()
	}

	pods := make([]pod, 2)
	for i := range pods {
		pods[i] = addPod(t, f, nodes[i], envs[i])
		serveRemoteAddr(t, pods[i].Path)
	}
	waitFor(t, 20*time.Second, "pod on n0 -> pod on n1 over VXLAN, unmasqueraded", func() error {
		return expectSeenAs(pods[0].Path, pods[1].IP, pods[0].IP.String())
	})
	s2 := envs[2].Subnet.Masked()
	wantRoute := fmt.Sprintf("%s via %s dev flannel.1 proto 78 onlink", s2, s2.Addr())
	waitFor(t, 20*time.Second, "route and FDB entry to n2 on n0", func() error {
		if got := strings.TrimSpace(mustExec(t, f, nodes[0], "ip", "route", "show", s2.String())); got != wantRoute {
			return fmt.Errorf("route %q, want %q", got, wantRoute)
		}
		if fdb := mustExec(t, f, nodes[0], "bridge", "fdb", "show", "dev", "flannel.1"); !strings.Contains(fdb, "dst "+nodes[2].IP.String()) {
			return fmt.Errorf("no FDB entry to %s:\n%s", nodes[2].IP, fdb)
		}
		return nil
	})

	// A restart with nothing changed keeps the subnet and writes nothing.
	daemons[0].Kill()
	daemons[0].Start()
	daemons[0].WaitHealthy()
	if env := daemons[0].Env(); env.Subnet != envs[0].Subnet {
		t.Fatalf("n0 restarted with subnet %s, had %s", env.Subnet, envs[0].Subnet)
	}
	if n := daemons[0].Metric("hoist_flannel_applied_entries_total"); n != 0 {
		t.Fatalf("restart with nothing changed wrote %v kernel entries", n)
	}

	// Deleting n2's Node removes its entries everywhere, and only those.
	daemons[2].Kill()
	if err := m.admin.CoreV1().Nodes().Delete(ctx, nodes[2].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[:2] {
		waitFor(t, 20*time.Second, "n2's route and FDB entry gone from "+n.Name, func() error {
			if got := strings.TrimSpace(mustExec(t, f, n, "ip", "route", "show", s2.String())); got != "" {
				return fmt.Errorf("route still there: %q", got)
			}
			if fdb := mustExec(t, f, n, "bridge", "fdb", "show", "dev", "flannel.1"); strings.Contains(fdb, "dst "+nodes[2].IP.String()) {
				return fmt.Errorf("FDB entry still there:\n%s", fdb)
			}
			return nil
		})
	}
	if err := expectSeenAs(pods[1].Path, pods[0].IP, pods[1].IP.String()); err != nil {
		t.Fatalf("n1 -> n0 after n2 left: %v", err)
	}
}

// TestIntegrationKubeSubnetManagerSamePublicIP: a second node claiming a
// public IP another node publishes is refused with both names.
func TestIntegrationKubeSubnetManagerSamePublicIP(t *testing.T) {
	f := testenv.Fabric(t, 2)
	nodes := f.Nodes()
	m := startKubeMaster(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kc0, kc1 := m.joinNode(t, nodes[0].Name), m.joinNode(t, nodes[1].Name)
	mustExec(t, f, nodes[0], "ip", "link", "set", "lo", "up")
	d0 := newFlanneld(t, f, nodes[0], "")
	d0.args = []string{testenv.Binary(t, "hoist"), "flanneld", "--subnet-mgr", "kube", "--kubeconfig", kc0,
		"--node-name", nodes[0].Name, "--iface", "eth0", "--subnet-file", d0.subnetFile, "--healthz-address", "-"}
	d0.Start()
	d0.Env()
	// n1 is told its public IP is n0's (an operator mistake).
	if _, err := m.admin.CoreV1().Nodes().Patch(ctx, nodes[1].Name, "application/merge-patch+json",
		[]byte(`{"metadata":{"annotations":{"`+kube.AnnotationPublicIPOverwrite+`":"`+nodes[0].IP.String()+`"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	d1 := newFlanneld(t, f, nodes[1], "")
	d1.args = []string{testenv.Binary(t, "hoist"), "flanneld", "--subnet-mgr", "kube", "--kubeconfig", kc1,
		"--node-name", nodes[1].Name, "--iface", "eth0", "--subnet-file", d1.subnetFile, "--healthz-address", "-"}
	d1.Start()
	want := fmt.Sprintf("nodes %s and %s both claim public IP %s", nodes[0].Name, nodes[1].Name, nodes[0].IP)
	waitFor(t, 30*time.Second, "the conflict error on n1", func() error {
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
