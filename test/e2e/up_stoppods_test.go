package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/namespaces"

	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/internal/testenv/ctrdtest"
	"github.com/hoist-project/hoist/packaging/images"
)

// stopPodsManifest is a pod whose stop is observable: a preStop hook that
// sleeps stopPodsHook, within a grace period the stop-all honours.
const stopPodsManifest = `apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 20
  containers:
  - name: web
    image: ` + images.TestboxImage + `
    imagePullPolicy: Never
    command: [/testbox, netexec]
    lifecycle: {preStop: {sleep: {seconds: 2}}}
`

const stopPodsHook = 2 * time.Second

// TestE2EUpStopPods runs `hoist up --stop-pods` in a fresh netns with a
// private containerd (as TestE2EUpKubectlRun does), runs a pod with the real
// kubectl, sends SIGTERM and checks hoist up stopped the pod gracefully
// before exiting: no container, task, netns, sandbox checkpoint or
// host-local lease of it is left. The API pod stays; the next start runs
// it again (new container, same pod), and the next SIGTERM stops it again.
func TestE2EUpStopPods(t *testing.T) {
	m := newUpMachine(t, "192.0.2.10")
	ctrd, inNS := m.ctrd, m.inNS

	dataDir := t.TempDir()
	const node = "hoist-up-node"
	const timeout = 40 * time.Second
	upArgs := m.upArgs(dataDir, node, "--stop-pods", "--stop-pods-timeout", timeout.String())
	var cur *upProcess
	t.Cleanup(func() {
		if cur == nil {
			return
		}
		_ = cur.cmd.Process.Kill()
		<-cur.exited
		if t.Failed() {
			t.Logf("hoist up output:\n%s", cur.logs.String())
		}
	})
	kc := filepath.Join(dataDir, "admin.kubeconfig")
	k := m.kubectlFunc(kc)
	checkAlive := func() {
		select {
		case err := <-cur.exited:
			cur.exited <- err
			t.Fatalf("hoist up exited: %v\n%s", err, cur.logs.String())
		default:
		}
	}
	// start runs hoist up and waits for pod web Running in a container
	// other than old (the API keeps the last status until the kubelet
	// writes a new one); it returns the pod's IP and container ID.
	start := func(old string) (ip, containerID string) {
		t.Helper()
		cur = &upProcess{cmd: inNS(m.hoist, upArgs...), exited: make(chan error, 1), logs: &testenv.SyncBuffer{}}
		cur.cmd.Stdout, cur.cmd.Stderr = cur.logs, cur.logs
		if err := cur.cmd.Start(); err != nil {
			t.Fatalf("start hoist up: %v", err)
		}
		go func() { cur.exited <- cur.cmd.Wait() }()
		testenv.WaitFor(t, 90*time.Second, "node Ready", func() error {
			checkAlive()
			out, err := k("", "get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
			if err == nil && out != "True" {
				err = fmt.Errorf("Ready=%q", out)
			}
			return err
		})
		if out, err := k("", "get", "pod", "web"); err != nil && strings.Contains(err.Error(), "NotFound") {
			if out, err := k(stopPodsManifest, "apply", "-f", "-"); err != nil {
				t.Fatalf("%v %s", err, out)
			}
		} else if err != nil {
			t.Fatalf("%v %s", err, out)
		}
		testenv.WaitFor(t, 90*time.Second, "pod web Running in a new container", func() error {
			checkAlive()
			out, err := k("", "get", "pod", "web", "-o", "jsonpath={.status.phase} {.status.podIP} {.status.containerStatuses[0].containerID}")
			f := strings.Fields(out)
			if err != nil || len(f) != 3 || f[0] != "Running" || net.ParseIP(f[1]) == nil || f[2] == old {
				return fmt.Errorf("%q %v", out, err)
			}
			ip, containerID = f[1], f[2]
			return nil
		})
		if leases := leaseFiles(t, dataDir); !leases[ip] {
			t.Fatalf("no host-local lease of the pod's IP %s (lease files: %v)", ip, leases)
		}
		return ip, containerID
	}
	// stop sends SIGTERM and checks hoist up exits cleanly after stopping
	// the pod (its preStop hook ran) and that nothing of it is left.
	stop := func(podIP string) {
		t.Helper()
		podNS := m.notePodNetns()
		t0 := time.Now()
		if err := cur.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-cur.exited:
			cur.exited <- err
			if err != nil {
				t.Fatalf("hoist up after SIGTERM: %v\n%s", err, cur.logs.String())
			}
		case <-time.After(timeout + 30*time.Second):
			t.Fatalf("hoist up did not stop within %s of SIGTERM", timeout+30*time.Second)
		}
		took := time.Since(t0)
		logs := cur.logs.String()
		cur = nil
		if !strings.Contains(logs, `msg="all pods stopped" node=`+node+" pods=1") {
			t.Fatalf("no \"all pods stopped\" line for one pod in hoist up's output:\n%s", logs)
		}
		if took < stopPodsHook {
			t.Fatalf("hoist up stopped %s after SIGTERM, before the pod's %s preStop hook could end", took, stopPodsHook)
		}
		checkNoPodLeft(t, ctrd, dataDir, podIP, podNS)
		t.Logf("SIGTERM → exit with the pod stopped: %s", took.Round(time.Millisecond))
	}

	ip, first := start("")
	stop(ip)
	// The API pod is left: the next start runs it again, in a new container.
	ip, _ = start(first)
	stop(ip)
}

// checkNoPodLeft checks that hoist up left nothing of its pods: no
// container or task in the kubelet's containerd namespace, none of the
// pods' netns, no sandbox checkpoint, no host-local lease of podIP.
func checkNoPodLeft(t *testing.T, d *ctrdtest.Containerd, dataDir, podIP string, podNS map[string]bool) {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "k8s.hoist")
	cs, err := d.Client().Containers(ctx)
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	tasks, err := d.Client().TaskService().List(ctx, nil)
	if err != nil {
		t.Fatalf("list tasks: %v", err)
	}
	if len(cs)+len(tasks.Tasks) > 0 {
		t.Fatalf("%d containers and %d tasks left in containerd after --stop-pods", len(cs), len(tasks.Tasks))
	}
	if len(podNS) == 0 {
		t.Fatal("no pod netns recorded while the pod ran")
	}
	for n := range namedNetns(t) {
		if podNS[n] {
			t.Fatalf("pod netns %s left after --stop-pods", n)
		}
	}
	ckpts, err := os.ReadDir(filepath.Join(dataDir, "kubelet", "sandboxes"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if len(ckpts) > 0 {
		t.Fatalf("sandbox checkpoints left: %v", ckpts)
	}
	if leases := leaseFiles(t, dataDir); leases[podIP] {
		t.Fatalf("host-local lease of %s left after --stop-pods (lease files: %v)", podIP, leases)
	}
}

// leaseFiles names the files of host-local's lease directories under
// hoist up's data dir (a lease is a file named by the IP).
func leaseFiles(t *testing.T, dataDir string) map[string]bool {
	t.Helper()
	files := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(dataDir, "cni", "networks"), func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			files[e.Name()] = true
		}
		return err
	})
	if err != nil {
		t.Fatalf("host-local leases: %v", err)
	}
	return files
}
