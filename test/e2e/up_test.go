// Package e2e holds end-to-end tests: hoist's own binaries driven by the real
// kubectl, every cluster inside network namespaces the test creates.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/namespaces"

	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/internal/testenv/ctrdtest"
	"github.com/hoist-project/hoist/packaging/images"
)

// TestE2EUpKubectlRun runs `hoist up` in a fresh netns with a private
// containerd, then drives it with the real kubectl: node Ready, kubectl run,
// the pod answers on its IP, graceful delete, SIGTERM.
func TestE2EUpKubectlRun(t *testing.T) {
	// The netns stands for a machine: lo, and a "NIC" with the default
	// route, whose address flanneld's VXLAN device and the NodePorts use.
	const nodeIP = "192.0.2.10"
	m := newUpMachine(t, nodeIP)
	ctrd, nsPath, inNS, hoist := m.ctrd, m.nsPath, m.inNS, m.hoist

	dataDir := t.TempDir()
	node := "hoist-up-node"
	upArgs := m.upArgs(dataDir, node)
	var cur *upProcess
	startUp := func() *upProcess {
		t.Helper()
		p := &upProcess{cmd: inNS(hoist, upArgs...), exited: make(chan error, 1), logs: &testenv.SyncBuffer{}}
		p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("start hoist up: %v", err)
		}
		go func() { p.exited <- p.cmd.Wait() }()
		cur = p
		return p
	}
	t.Cleanup(func() {
		if cur == nil {
			return
		}
		select {
		case err := <-cur.exited:
			cur.exited <- err
		default:
			_ = cur.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("hoist up output:\n%s", cur.logs.String())
		}
	})
	stopUp := func(p *upProcess) {
		t.Helper()
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-p.exited:
			p.exited <- err // for the cleanup
			if err != nil {
				t.Fatalf("hoist up after SIGTERM: %v", err)
			}
			if cur == p {
				cur = nil // stopped cleanly: nothing to watch or kill
			}
		case <-time.After(30 * time.Second):
			t.Fatal("hoist up did not stop within 30s of SIGTERM")
		}
	}

	kc := filepath.Join(dataDir, "admin.kubeconfig")
	kubectl := m.kubectlFunc(kc)
	k := func(args ...string) (string, error) { return kubectl("", args...) }
	waitFor := func(what string, d time.Duration, cond func() (bool, string)) {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			if cur != nil {
				select {
				case err := <-cur.exited:
					cur.exited <- err
					t.Fatalf("hoist up exited while waiting for %s: %v", what, err)
				default:
				}
			}
			ok, state := cond()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not reached within %s; last: %s", what, d, state)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitNodeReady := func(p *upProcess) {
		t.Helper()
		waitFor("the kubectl hint on stdout", 60*time.Second, func() (bool, string) {
			want := "kubectl --kubeconfig " + kc + " get nodes"
			return strings.Contains(p.logs.String(), want), "no line " + want
		})
		waitFor("node Ready", 90*time.Second, func() (bool, string) {
			out, err := k("get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
			return err == nil && out == "True", fmt.Sprint(out, err)
		})
	}
	podState := func() (phase, ip, containerID, restarts string, err error) {
		out, err := k("get", "pod", "web", "-o",
			"jsonpath={.status.phase} {.status.podIP} {.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount}")
		f := strings.Fields(out)
		for len(f) < 4 {
			f = append(f, "")
		}
		return f[0], f[1], f[2], f[3], err
	}
	getHostname := func(podIP string) {
		t.Helper()
		waitFor("GET /hostname from the pod", 30*time.Second, func() (bool, string) {
			b, err := getInNetns(nsPath, net.JoinHostPort(podIP, "8080"), "/hostname")
			return err == nil && b == "web", fmt.Sprint(b, err)
		})
	}

	t0 := time.Now()
	first := startUp()
	waitNodeReady(first)
	tReady := time.Since(t0)

	t0 = time.Now()
	if out, err := k("run", "web", "--image="+images.TestboxImage, "--image-pull-policy=Never", "--command", "--", "/testbox", "netexec"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	var podIP, containerID string
	waitFor("pod web Running with an IP", 90*time.Second, func() (bool, string) {
		phase, ip, cid, _, err := podState()
		podIP, containerID = ip, cid
		return err == nil && phase == "Running" && net.ParseIP(ip) != nil && cid != "", fmt.Sprint(phase, ip, cid, err)
	})
	tRunning := time.Since(t0)
	getHostname(podIP)
	pid := taskPID(t, ctrd, containerID)
	checkPodInNodeSubnet(t, filepath.Join(dataDir, "flannel", "subnet.env"), podIP, func() (string, error) {
		return k("get", "node", node, "-o", "jsonpath={.spec.podCIDR}")
	})

	// The service proxy: ClusterIP and NodePort reach the pod.
	if out, err := k("expose", "pod", "web", "--port=80", "--target-port=8080", "--type=NodePort"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	out, err := k("get", "service", "web", "-o", "jsonpath={.spec.clusterIP} {.spec.ports[0].nodePort}")
	svc := strings.Fields(out)
	if err != nil || len(svc) != 2 {
		t.Fatalf("service web: %q %v", out, err)
	}
	getThroughService := func() {
		t.Helper()
		for _, addr := range []string{net.JoinHostPort(svc[0], "80"), net.JoinHostPort(nodeIP, svc[1])} {
			waitFor("GET /hostname through the service at "+addr, 60*time.Second, func() (bool, string) {
				b, err := getInNetns(nsPath, addr, "/hostname")
				return err == nil && b == "web", fmt.Sprint(b, err)
			})
		}
	}
	getThroughService()

	// A second hoist up on the same machine is refused by preflight.
	clash := inNS(hoist, "up", "--data-dir", t.TempDir(), "--secure-address", "127.0.0.1:6443",
		"--containerd-address", ctrd.Address, "--cni-bin-dir", m.cniDir)
	clashOut, err := clash.CombinedOutput()
	if err == nil || !strings.Contains(string(clashOut), "API port 6443 is already in use (held by hoist[") {
		t.Fatalf("second hoist up: want a refusal naming port 6443 and its holder, got %v: %s", err, clashOut)
	}

	// Stopping hoist up leaves the pod serving; starting again adopts it.
	t0 = time.Now()
	stopUp(first)
	tStop := time.Since(t0)
	getHostname(podIP)
	t0 = time.Now()
	second := startUp()
	waitNodeReady(second)
	tReadyAgain := time.Since(t0)
	waitFor("pod web adopted unchanged", 60*time.Second, func() (bool, string) {
		phase, ip, cid, restarts, err := podState()
		return err == nil && phase == "Running" && ip == podIP && cid == containerID && restarts == "0",
			fmt.Sprint(phase, ip, cid, restarts, err)
	})
	getHostname(podIP)
	getThroughService()
	if again := taskPID(t, ctrd, containerID); again != pid {
		t.Fatalf("container %s restarted across hoist up's restart: pid %d, then %d", containerID, pid, again)
	}

	podNS := podNetns(t, ctrd)
	t0 = time.Now()
	if out, err := k("delete", "pod", "web", "--timeout=90s"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	tDelete := time.Since(t0)
	if out, err := k("get", "pod", "web"); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("pod web still there after kubectl delete returned: %s %v", out, err)
	}
	waitFor("the pod's netns removed", 30*time.Second, func() (bool, string) {
		var extra []string
		for n := range namedNetns(t) {
			if podNS[n] {
				extra = append(extra, n)
			}
		}
		return len(extra) == 0, fmt.Sprint("leftover: ", extra)
	})
	// The new kubelet has handled the pod (it acknowledged the deletion):
	// had it restarted the pod instead of adopting it, it would have said so.
	for _, line := range []string{"sandbox started", "container started"} {
		if strings.Contains(second.logs.String(), line) {
			t.Fatalf("the restarted hoist up logged %q: it did not adopt the running pod", line)
		}
	}
	stopUp(second)
	t.Logf("timings: up→node Ready %s, kubectl run→Running %s, SIGTERM→exit %s, restart→node Ready %s, kubectl delete %s",
		tReady.Round(time.Millisecond), tRunning.Round(time.Millisecond), tStop.Round(time.Millisecond),
		tReadyAgain.Round(time.Millisecond), tDelete.Round(time.Millisecond))
}

// upProcess is one run of `hoist up`.
type upProcess struct {
	cmd    *exec.Cmd
	exited chan error // receives Wait's result once; put back after reading
	logs   *testenv.SyncBuffer
}

// taskPID returns the PID of the running task of a container named by its
// status containerID ("containerd://<id>").
func taskPID(t *testing.T, d *ctrdtest.Containerd, containerID string) uint32 {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "k8s.hoist")
	id := strings.TrimPrefix(containerID, "containerd://")
	c, err := d.Client().LoadContainer(ctx, id)
	if err != nil {
		t.Fatalf("container %s: %v", containerID, err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		t.Fatalf("task of %s: %v", containerID, err)
	}
	return task.Pid()
}

// getInNetns GETs path from addr with the connection opened inside the netns
// (a socket keeps the netns it was created in).
func getInNetns(nsPath, addr, path string) (string, error) {
	var conn net.Conn
	if err := nsutil.Do(nsPath, func() error {
		var err error
		conn, err = net.DialTimeout("tcp", addr, 3*time.Second)
		return err
	}); err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return "", err
	}
	if err := req.Write(conn); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return strings.TrimSpace(string(b)), nil
}

// podNetns names the netns of every sandbox the test's kubelet has in
// its private containerd (the kubelet names them hoist-<id[:24]>).
func podNetns(t *testing.T, d *ctrdtest.Containerd) map[string]bool {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "k8s.hoist")
	cs, err := d.Client().Containers(ctx)
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	m := map[string]bool{}
	for _, c := range cs {
		if id := c.ID(); len(id) >= 24 {
			m["hoist-"+id[:24]] = true
		}
	}
	return m
}

func namedNetns(t *testing.T) map[string]bool {
	t.Helper()
	names, err := nsutil.ListNamed()
	if err != nil {
		t.Fatalf("list netns: %v", err)
	}
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}
