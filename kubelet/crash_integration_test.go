package kubelet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoist-project/hoist/kubelet/runtime"
	"github.com/hoist-project/hoist/packaging/images"
)

const crashPods = 20

// TestIntegrationKubeletCrash kills `hoist kubelet` with SIGKILL while it is
// creating 20 static pods, starts it again, and counts what the node holds:
// netns, host-local leases, veths, sandbox checkpoints and containerd
// containers must match the 20 pods exactly, and containers that were
// running at the kill keep running (same PID, restart count 0).
func TestIntegrationKubeletCrash(t *testing.T) {
	s := newSuite(t)
	n := s.newNode(t, 42)
	p := n.startBinary(t)
	waitFor(t, 60*time.Second, "kubelet started", func() (bool, string) {
		return strings.Contains(p.out.String(), "kubelet started"), p.out.String()
	})
	for i := range crashPods {
		name := fmt.Sprintf("crash-%02d", i)
		n.write(name+".yaml", podYAML(name, `  containers:
  - name: c
    image: `+images.TestboxImage+`
    args: [sleep]
`))
	}
	waitFor(t, 60*time.Second, "some containers running", func() (bool, string) {
		running := n.taskPIDs()
		return len(running) >= 6, fmt.Sprintf("%d running", len(running))
	})
	p.kill9()
	killed := n.inventory()
	if len(killed.containers) >= 2*crashPods {
		t.Fatalf("the kubelet had created every pod before the kill (%d containers): the test checks nothing", len(killed.containers))
	}
	runningAtKill := n.taskPIDs()
	t.Logf("at the kill: %d checkpoints, %d netns, %d leases, %d containers (%d running)",
		len(killed.sandboxes), len(killed.netns), len(killed.leases), len(killed.containers), len(runningAtKill))

	p2 := n.startBinary(t)
	// One runc shim per pod, started for its sandbox; none for an app container.
	want := map[string]int{"containers": 2 * crashPods, "running": 2 * crashPods, "netns": crashPods, "leases": crashPods,
		"checkpoints": crashPods, "veths": crashPods, "sandbox shims": crashPods, "app shims": 0}
	var got map[string]int
	waitFor(t, 120*time.Second, "every pod running exactly once", func() (bool, string) {
		got = n.crashCounts()
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprintf("got %v, want %v", got, want)
	})
	now := n.taskPIDs()
	for id, pid := range runningAtKill {
		if now[id] != pid {
			t.Errorf("container %s (pod %s) running at the kill with pid %d was restarted or removed (now pid %d)", id, n.podOf(id), pid, now[id])
		}
	}
	perPod := map[string]int{}
	ctrs, err := s.ctrd.Client().Containers(n.ctx())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ctrs {
		l, _ := c.Labels(n.ctx())
		perPod[l[runtime.LabelPodName]]++
		if l[runtime.LabelKind] == string(runtime.KindApp) && l[runtime.LabelRestart] != "0" {
			t.Errorf("container %s of %s has restart count %s", c.ID(), l[runtime.LabelPodName], l[runtime.LabelRestart])
		}
	}
	for i := range crashPods {
		if name := n.podName(fmt.Sprintf("crash-%02d", i)); perPod[name] != 2 {
			t.Errorf("pod %s has %d containers, want sandbox + 1", name, perPod[name])
		}
	}
	if err := p2.term(30 * time.Second); err != nil {
		t.Errorf("hoist kubelet after SIGTERM: %v", err)
	}
}

// crashCounts counts the node's containers, running tasks, netns, leases,
// checkpoints and veths (in its host netns, where the bridge is).
func (n *node) crashCounts() map[string]int {
	n.t.Helper()
	inv := n.inventory()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+n.hostNS, "ip", "-o", "link", "show", "type", "veth").Output()
	if err != nil {
		n.t.Fatalf("list veths: %v", err)
	}
	counts := map[string]int{
		"containers": len(inv.containers), "running": len(n.taskPIDs()), "netns": len(inv.netns),
		"leases": len(inv.leases), "checkpoints": len(inv.sandboxes), "veths": strings.Count(string(out), "\n"),
	}
	counts["sandbox shims"], counts["app shims"] = 0, 0
	kinds := map[string]string{} // container ID → kind
	ctrs, err := n.s.ctrd.Client().Containers(n.ctx())
	if err != nil {
		n.t.Fatal(err)
	}
	for _, c := range ctrs {
		if l, err := c.Labels(n.ctx()); err == nil {
			kinds[c.ID()] = l[runtime.LabelKind]
		}
	}
	// A shim is named after the container it was started for. One started
	// for a container that no longer exists is not counted: containerd 1.6
	// can lose a shim it was starting when its client dies mid-request
	// (the SIGKILL here), which is not the kubelet's to find.
	for _, id := range n.shimIDs() {
		switch kinds[id] {
		case string(runtime.KindSandbox):
			counts["sandbox shims"]++
		case "":
		default:
			counts["app shims"]++
		}
	}
	return counts
}

// shimIDs returns the -id of every runc shim process serving the node's
// containerd namespace (their command line names both).
func (n *node) shimIDs() []string {
	n.t.Helper()
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		n.t.Fatal(err)
	}
	var ids []string
	for _, f := range cmdlines {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // exited meanwhile
		}
		args := strings.Split(string(b), "\x00")
		if !strings.HasSuffix(args[0], "containerd-shim-runc-v2") {
			continue
		}
		flags := map[string]string{}
		for i := 1; i+1 < len(args); i++ {
			if args[i] == "-namespace" || args[i] == "-id" {
				flags[args[i]] = args[i+1]
			}
		}
		if flags["-namespace"] == n.cfg.ContainerdNamespace {
			ids = append(ids, flags["-id"])
		}
	}
	return ids
}
