package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/namespaces"
	"github.com/vishvananda/netlink"

	"github.com/hoist-project/hoist/internal/cluster"
	"github.com/hoist-project/hoist/internal/fabric"
	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/internal/testenv/ctrdtest"
	"github.com/hoist-project/hoist/kubelet/runtime"
	"github.com/hoist-project/hoist/packaging/images"
)

// TestE2EClusterTwoNodes brings up `hoist cluster up --nodes 2` on a private
// containerd and drives it with the real kubectl: both nodes Ready, a
// Deployment spread over both nodes by anti-affinity, pod-to-pod traffic
// across nodes (flannel VXLAN), a Service ClusterIP from a pod and from a
// node (`hoist cluster exec`), and `hoist cluster down` leaving nothing.
func TestE2EClusterTwoNodes(t *testing.T) {
	c := startCluster(t, 2)

	for _, n := range []string{"node1", "node2"} {
		out, err := c.kubectl("get", "node", n, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err != nil || out != "True" {
			t.Fatalf("node %s: Ready=%q %v (cluster up returned, so every node must be Ready)", n, out, err)
		}
	}

	podIPs, pod2Name := c.deployWeb(t)
	dial := c.dialer(t, "node1")
	c.waitFor("pod on node1 reaches the pod on node2 by pod IP", 30*time.Second, func() (bool, string) {
		got, err := dial(podIPs["node1"], podIPs["node2"], "8080")
		return err == nil && got == pod2Name, fmt.Sprint(got, err)
	})

	// The Service's ClusterIP from a pod and from node2 itself.
	clusterIP, err := c.kubectl("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil || net.ParseIP(clusterIP) == nil {
		t.Fatalf("service web ClusterIP %q: %v", clusterIP, err)
	}
	c.waitFor("the ClusterIP from a pod", 60*time.Second, func() (bool, string) {
		got, err := dial(podIPs["node1"], clusterIP, "80")
		return err == nil && strings.HasPrefix(got, "web-"), fmt.Sprint(got, err)
	})
	curl := testenv.RequireCommand(t, "curl", "curl") // busybox-static's wget segfaults on this kernel
	c.waitFor("the ClusterIP from `hoist cluster exec node2`", 60*time.Second, func() (bool, string) {
		out, err := c.hoist("cluster", "exec", "--data-dir", c.dir, "node2", "--",
			curl, "-sS", "--max-time", "3", "http://"+clusterIP+"/hostname")
		return err == nil && strings.HasPrefix(out, "web-"), fmt.Sprint(out, err)
	})

	// exec passes the command's exit status through and names unknown nodes.
	if _, err := c.hoist("cluster", "exec", "--data-dir", c.dir, "node1", "--", "sh", "-c", "exit 3"); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("exec of `exit 3`: got %v, want exit status 3", err)
	}
	if _, err := c.hoist("cluster", "exec", "--data-dir", c.dir, "node9", "--", "true"); err == nil || !strings.Contains(err.Error(), `no node "node9"`) {
		t.Fatalf("exec on node9: got %v", err)
	}

	c.downAndCheckClean(t, 2)
}

// TestE2EClusterEtcdHostGW runs the other flannel combination: leases in
// Debian's etcd (--subnet-mgr etcd) and the host-gw backend; pods on two
// nodes reach each other by pod IP through plain routes.
func TestE2EClusterEtcdHostGW(t *testing.T) {
	testenv.RequireCommand(t, "etcd", "etcd-server")
	c := startCluster(t, 2, "--subnet-mgr", "etcd", "--backend", "host-gw")
	podIPs, pod2Name := c.deployWeb(t)
	dial := c.dialer(t, "node1")
	c.waitFor("pod on node1 reaches the pod on node2 over host-gw", 30*time.Second, func() (bool, string) {
		got, err := dial(podIPs["node1"], podIPs["node2"], "8080")
		return err == nil && got == pod2Name, fmt.Sprint(got, err)
	})
	out, err := c.hoist("cluster", "exec", "--data-dir", c.dir, "node1", "--", "ip", "route", "show", "proto", "78")
	if err != nil || !strings.Contains(out, "via "+c.node(t, "node2").IP.String()+" dev eth0") {
		t.Fatalf("node1 has no host-gw route via node2 (%v):\n%s", err, out)
	}
	c.downAndCheckClean(t, 2)
}

// TestE2EClusterEBPFProxy runs every node's proxy in eBPF mode, each
// attached to its own node's cgroup: a pod and `hoist cluster exec` reach
// the Service's ClusterIP without any NAT rule for it.
func TestE2EClusterEBPFProxy(t *testing.T) {
	c := startCluster(t, 2, "--proxy-mode", "ebpf")
	podIPs, _ := c.deployWeb(t)
	dial := c.dialer(t, "node1")
	clusterIP, err := c.kubectl("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil || net.ParseIP(clusterIP) == nil {
		t.Fatalf("service web ClusterIP %q: %v", clusterIP, err)
	}
	c.waitFor("the ClusterIP from a pod (eBPF connect4)", 60*time.Second, func() (bool, string) {
		got, err := dial(podIPs["node1"], clusterIP, "80")
		return err == nil && strings.HasPrefix(got, "web-"), fmt.Sprint(got, err)
	})
	// It is the socket program, not a NAT rule, that sends it there.
	rules, err := c.hoist("cluster", "exec", "--data-dir", c.dir, "node1", "--", "iptables-save", "-t", "nat")
	if err != nil || strings.Contains(rules, clusterIP) {
		t.Fatalf("node1's nat table mentions the ClusterIP %s in eBPF mode (%v):\n%s", clusterIP, err, rules)
	}
	// `cluster exec` joins the node's cgroup, so the node itself reaches it too.
	curl := testenv.RequireCommand(t, "curl", "curl")
	c.waitFor("the ClusterIP from `hoist cluster exec node2` (eBPF)", 60*time.Second, func() (bool, string) {
		out, err := c.hoist("cluster", "exec", "--data-dir", c.dir, "node2", "--",
			curl, "-sS", "--max-time", "3", "http://"+clusterIP+"/hostname")
		return err == nil && strings.HasPrefix(out, "web-"), fmt.Sprint(out, err)
	})
	c.downAndCheckClean(t, 2)
}

// TestE2EClusterDownAfterCrashedUp kills `hoist cluster up` half-way (once
// node2's kubelet is recorded): a second up refuses the directory, and
// `hoist cluster down` removes everything the dead up left running.
func TestE2EClusterDownAfterCrashedUp(t *testing.T) {
	c := newTestCluster(t)
	up := exec.Command(c.hoistBin, c.upArgs(2)...)
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- up.Wait() }()
	c.waitFor("node2's kubelet recorded in cluster.json", 90*time.Second, func() (bool, string) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("cluster up finished before it could be killed: %v", err)
		default:
		}
		st, err := cluster.Load(c.dir)
		if err != nil {
			return false, err.Error()
		}
		for _, p := range st.Processes {
			if p.Name == "node2-kubelet" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d processes recorded", len(st.Processes))
	})
	if err := up.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited

	again, err := c.hoist(c.upArgs(2)...)
	if err == nil || !strings.Contains(err.Error(), "a cluster already runs under "+c.dir) {
		t.Fatalf("second cluster up on the same dir: want a refusal, got %v\n%s", err, again)
	}
	c.downAndCheckClean(t, 0)
}

// testCluster is a cluster started by `hoist cluster up` for one test.
type testCluster struct {
	t         *testing.T
	hoistBin  string
	kubectlBn string
	dir       string
	ports     []string // --api-port ... flags with reserved ports
	ctrd      *ctrdtest.Containerd
}

// newTestCluster builds the binaries and starts a private containerd; its
// cleanup runs `hoist cluster down` (and shows the logs on failure).
func newTestCluster(t *testing.T) *testCluster {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "nsenter", "util-linux")
	c := &testCluster{t: t, kubectlBn: testenv.RequireCommand(t, "kubectl", "kubectl"), hoistBin: testenv.Binary(t, "hoist")}
	testenv.Binary(t, "pause") // cluster up builds its images from the binaries next to hoist
	testenv.Binary(t, "testbox")
	for _, p := range []string{"flannel", "bridge", "host-local", "loopback", "portmap"} {
		testenv.Binary(t, "cni/"+p) // next to hoist: its default --cni-bin-dir
	}
	c.ctrd = ctrdtest.StartContainerd(t) // registered first: stopped after down
	c.dir = t.TempDir()
	c.ports = []string{"--api-port", fmt.Sprint(testenv.FreePort(t)), "--etcd-port", fmt.Sprint(testenv.FreePort(t)),
		"--etcd-peer-port", fmt.Sprint(testenv.FreePort(t)),
		"--flannel-etcd-port", fmt.Sprint(testenv.FreePort(t)), "--flannel-etcd-peer-port", fmt.Sprint(testenv.FreePort(t))}
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
		if out, err := c.hoist("cluster", "down", "--data-dir", c.dir); err != nil {
			t.Errorf("cleanup: hoist cluster down: %v\n%s", err, out)
		}
	})
	return c
}

// upArgs is the `hoist cluster up` command line for this test's cluster.
func (c *testCluster) upArgs(nodes int, extra ...string) []string {
	args := append([]string{"cluster", "up", "--data-dir", c.dir, "--nodes", fmt.Sprint(nodes),
		"--containerd-address", c.ctrd.Address, "--ready-timeout", "150s"}, c.ports...)
	return append(args, extra...)
}

// startCluster runs `hoist cluster up` and checks its usage hint.
func startCluster(t *testing.T, nodes int, extra ...string) *testCluster {
	c := newTestCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, c.hoistBin, c.upArgs(nodes, extra...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("hoist cluster up: %v\n%s", err, out)
	}
	t.Logf("hoist cluster up: %d nodes Ready in %s", nodes, time.Since(t0).Round(time.Millisecond))
	want := "kubectl --kubeconfig " + filepath.Join(c.dir, "admin.kubeconfig")
	if !strings.Contains(string(out), want) {
		t.Fatalf("cluster up printed no %q hint:\n%s", want, out)
	}
	return c
}

// deployWeb applies webManifest and waits for one Running pod per node; it
// returns the pod IPs by node and the name of node2's pod.
func (c *testCluster) deployWeb(t *testing.T) (map[string]string, string) {
	t.Helper()
	if out, err := c.kubectlStdin(webManifest(), "apply", "-f", "-"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	podIPs := map[string]string{}
	c.waitFor("one web pod Running on each node", 120*time.Second, func() (bool, string) {
		out, err := c.kubectl("get", "pods", "-l", "app=web", "-o",
			`jsonpath={range .items[*]}{.spec.nodeName} {.status.phase} {.status.podIP}{"\n"}{end}`)
		if err != nil {
			return false, err.Error()
		}
		clear(podIPs)
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) == 3 && f[1] == "Running" && net.ParseIP(f[2]) != nil {
				podIPs[f[0]] = f[2]
			}
		}
		return podIPs["node1"] != "" && podIPs["node2"] != "", out
	})
	pod2, err := c.kubectl("get", "pods", "-l", "app=web", "--field-selector", "spec.nodeName=node2", "-o", "jsonpath={.items[0].metadata.name}")
	if err != nil {
		t.Fatal(err)
	}
	return podIPs, pod2
}

// dialer returns a func that asks the netexec pod at from (reached from
// node's namespace) to fetch /hostname from host:port, as upstream's /dial.
func (c *testCluster) dialer(t *testing.T, node string) func(from, host, port string) (string, error) {
	ns := c.node(t, node).NetnsPath
	return func(from, host, port string) (string, error) {
		responses, errs, err := podDial(ns, from, "http", "hostname", host, port, 1)
		if err != nil {
			return "", err
		}
		if len(responses) != 1 {
			return "", fmt.Errorf("dial %s:%s: %v", host, port, errs)
		}
		return responses[0], nil
	}
}

func (c *testCluster) hoist(args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(c.hoistBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("hoist %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func (c *testCluster) kubectl(args ...string) (string, error) { return c.kubectlStdin("", args...) }

// kubectlStdin runs kubectl from the root namespace with admin.kubeconfig.
func (c *testCluster) kubectlStdin(stdin string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(c.kubectlBn, append([]string{"--kubeconfig", filepath.Join(c.dir, "admin.kubeconfig"), "--request-timeout=10s"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func (c *testCluster) node(t *testing.T, name string) cluster.NodeState {
	t.Helper()
	st, err := cluster.Load(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	n, err := st.Node(name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFor polls cond every 250ms until it holds or d passes.
func (c *testCluster) waitFor(what string, d time.Duration, cond func() (bool, string)) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not reached within %s; last: %s", what, d, state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (c *testCluster) dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(c.dir, "logs", "*.log"))
	sort.Strings(logs)
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		if len(b) > 6000 {
			b = b[len(b)-6000:]
		}
		c.t.Logf("==== %s (tail)\n%s", filepath.Base(l), b)
	}
}

// downAndCheckClean runs `hoist cluster down` and checks that no process,
// pod or node netns, root link or containerd container of the cluster is
// left, and that a second down has nothing to do.
func (c *testCluster) downAndCheckClean(t *testing.T, minPods int) {
	t.Helper()
	st, err := cluster.Load(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	var podNetns []string
	client := c.ctrd.Client()
	for _, n := range st.Nodes {
		ctx := namespaces.WithNamespace(context.Background(), n.ContainerdNamespace)
		ctrs, err := client.Containers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ctr := range ctrs {
			if l, err := ctr.Labels(ctx); err == nil && l[runtime.LabelNetNS] != "" {
				podNetns = append(podNetns, l[runtime.LabelNetNS])
			}
		}
	}
	if len(podNetns) < minPods {
		t.Fatalf("found %d pod sandboxes before down, want at least %d", len(podNetns), minPods)
	}

	t0 := time.Now()
	out, err := c.hoist("cluster", "down", "--data-dir", c.dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("hoist cluster down in %s:\n%s", time.Since(t0).Round(time.Millisecond), out)

	var left []string
	for _, p := range st.Processes {
		if p.Running() {
			left = append(left, fmt.Sprintf("process %s (pid %d)", p.Name, p.PID))
		}
	}
	for _, ns := range podNetns {
		if _, err := os.Stat(ns); err == nil {
			left = append(left, "pod netns "+ns)
		}
	}
	for _, n := range st.Nodes {
		if _, err := os.Stat(n.NetnsPath); err == nil {
			left = append(left, "node netns "+n.Netns)
		}
		if _, err := os.Stat(n.BPFPinDir); err == nil {
			left = append(left, "eBPF pins "+n.BPFPinDir)
		}
		ctx := namespaces.WithNamespace(context.Background(), n.ContainerdNamespace)
		ctrs, err := client.Containers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ctr := range ctrs {
			left = append(left, "container "+n.ContainerdNamespace+"/"+ctr.ID())
		}
	}
	if _, err := netlink.LinkByName(fabric.LinkPrefix + st.Fabric); err == nil {
		left = append(left, "root link "+fabric.LinkPrefix+st.Fabric)
	}
	if _, err := os.Stat(filepath.Join(c.dir, "cluster.json")); err == nil {
		left = append(left, "cluster.json")
	}
	if len(left) > 0 {
		t.Fatalf("hoist cluster down left: %s", strings.Join(left, ", "))
	}
	if out, err := c.hoist("cluster", "down", "--data-dir", c.dir); err != nil || strings.TrimSpace(out) != "nothing to remove" {
		t.Fatalf("second hoist cluster down: want \"nothing to remove\", got %q %v", out, err)
	}
}

// webManifest is a 2-replica netexec Deployment whose pods repel each
// other by hostname (one per node) and a ClusterIP Service in front of it.
func webManifest() string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector:
              matchLabels: {app: web}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: netexec
        image: ` + images.TestboxImage + `
        imagePullPolicy: Never
        command: ["/testbox", "netexec"]
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
`
}
