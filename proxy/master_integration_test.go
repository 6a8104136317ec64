package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hoist-project/hoist/internal/testenv"
	ct "github.com/hoist-project/hoist/proxy/changes/changestest"
)

// startMaster runs `hoist master` (embedded etcd, loopback ports) until
// the test ends and returns its admin kubeconfig and a client.
func startMaster(t *testing.T) (string, kubernetes.Interface) {
	t.Helper()
	dir := t.TempDir()
	log, err := os.Create(filepath.Join(dir, "master.log"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, testenv.Binary(t, "hoist"), "master", "--data-dir", filepath.Join(dir, "master"),
		"--secure-address", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		"--etcd-client-url", testenv.FreeLoopbackURL(t), "--etcd-peer-url", testenv.FreeLoopbackURL(t))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait(); log.Close() })
	kc := filepath.Join(dir, "master", "admin.kubeconfig")
	var client kubernetes.Interface
	eventually(t, "hoist master serving (log: "+log.Name()+")", 90*time.Second, func() error {
		rc, err := clientcmd.BuildConfigFromFlags("", kc)
		if err != nil {
			return err
		}
		rc.Timeout = 5 * time.Second
		c, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return err
		}
		if _, err := c.Discovery().ServerVersion(); err != nil {
			return err
		}
		client = c
		return nil
	})
	return kc, client
}

// TestIntegrationRunRealMaster runs proxy.Run in both modes, each
// programming its own test node (eBPF: a private bpffs and cgroup), against
// one real hoist master: a Service and an EndpointSlice created through the
// API make the allocated cluster IP reach the pods, and an endpoint removed
// through the API leaves them.
func TestIntegrationRunRealMaster(t *testing.T) {
	kc, client := startMaster(t)
	for _, mode := range []string{ModeIPTables, ModeEBPF} {
		t.Run(mode, func(t *testing.T) { testRunRealMaster(t, mode, kc, client) })
	}
}

func testRunRealMaster(t *testing.T, mode, kc string, client kubernetes.Interface) {
	e := newModeEnv(t, mode, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	name := "web-" + mode
	svc := ct.Service(name, "", []v1.ServicePort{ct.Port("http", v1.ProtocolTCP, 80, "http", 0), ct.Port("dns", v1.ProtocolUDP, 53, "dns", 0)})
	svc, err := client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ports := []discovery.EndpointPort{ct.SlicePort("http", v1.ProtocolTCP, podTCPPort), ct.SlicePort("dns", v1.ProtocolUDP, podUDPPort)}
	slices := client.DiscoveryV1().EndpointSlices("default")
	if _, err := slices.Create(ctx, ct.Slice(name, name+"-0", ports, e.endpoints(0, 1)...), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	cfg := Config{Kubeconfig: kc, Mode: mode, NodeName: e.node.Name, NetnsPath: e.node.NetnsPath,
		MinSyncInterval: 100 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		BPFFSDir: e.bpf.pinDir, CgroupPath: e.bpf.cgroup, NodePortInterfaces: []string{"eth0"}}
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("proxy.Run: %v", err)
		}
	})
	vip := svc.Spec.ClusterIP + ":80"
	dial := e.from(e.node.NetnsPath)
	e.reachesAllVia(dial, vip, 2)
	if mode == ModeIPTables { // the eBPF mode translates sockets on the node only
		e.reachesAll(e.outside.NetnsPath, vip, 2)
	}

	// p0 leaves the slice through the API: new connections reach only p1.
	if _, err := slices.Update(ctx, ct.Slice(name, name+"-0", ports, e.endpoints(1)...), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "only p1 serves after the slice update", 20*time.Second, func() error {
		for i := 0; i < 5; i++ {
			reply, err := dial(vip)
			if err != nil {
				return err
			}
			if podOf(reply) != "p1" {
				return fmt.Errorf("reached %s", podOf(reply))
			}
		}
		return nil
	})
	select {
	case err := <-errc:
		errc <- err // for the cleanup
		t.Fatalf("proxy.Run returned early: %v", err)
	default:
	}
}
