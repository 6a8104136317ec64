package kubelet

import (
	"context"
	"fmt"
	"os/exec"
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
	want := map[string]int{"containers": 2 * crashPods, "running": 2 * crashPods, "netns": crashPods, "leases": crashPods, "checkpoints": crashPods, "veths": crashPods}
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
	return map[string]int{
		"containers": len(inv.containers), "running": len(n.taskPIDs()), "netns": len(inv.netns),
		"leases": len(inv.leases), "checkpoints": len(inv.sandboxes), "veths": strings.Count(string(out), "\n"),
	}
}
