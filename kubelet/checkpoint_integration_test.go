package kubelet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"

	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/kubelet/runtime"
	"github.com/hoist-project/hoist/packaging/images"
)

// TestIntegrationKubeletCorruptCheckpoint kills `hoist kubelet` with SIGKILL
// while two static pods run, then leaves what a power loss can leave: the
// checkpoint of pod "kept" truncated to zero bytes (its pause container is
// fine), and garbage in the checkpoint of pod "lost", whose pause container
// is gone too (its netns and host-local lease are not). A kubelet started
// again must run both pods, keep kept's containers as they are (same IDs,
// same PIDs, restart count 0), tear down lost's old sandbox (netns, lease,
// checkpoint), and say so once per file in its log.
func TestIntegrationKubeletCorruptCheckpoint(t *testing.T) {
	s := newSuite(t)
	n := s.newNode(t, 44)
	p := n.startBinary(t)
	waitFor(t, 60*time.Second, "kubelet started", func() (bool, string) {
		return strings.Contains(p.out.String(), "kubelet started"), p.out.String()
	})
	for _, name := range []string{"kept", "lost"} {
		n.write(name+".yaml", podYAML(name, `  containers:
  - name: c
    image: `+images.TestboxImage+`
    args: [sleep]
`))
	}
	waitFor(t, 60*time.Second, "both pods running", func() (bool, string) {
		inv := n.inventory()
		return len(n.taskPIDs()) == 4 && len(inv.netns) == 2 && len(inv.leases) == 2 && len(inv.sandboxes) == 2, fmt.Sprintf("%+v", inv)
	})
	p.kill9()
	pids := n.taskPIDs()
	kept, lost := n.podContainers("kept"), n.podContainers("lost")
	sandboxes := filepath.Join(n.cfg.RootDir, "sandboxes")
	keptFile := filepath.Join(sandboxes, kept.pause+".json")
	lostFile := filepath.Join(sandboxes, lost.pause+".json")
	if err := os.Truncate(keptFile, 0); err != nil {
		t.Fatal(err)
	}
	n.deletePause(lost.pause)
	if err := os.WriteFile(lostFile, []byte("\x00\x00\x00garbage{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if inv := n.inventory(); len(inv.netns) != 2 || len(inv.leases) != 2 || len(inv.sandboxes) != 2 || len(inv.containers) != 3 {
		t.Fatalf("setup: want both netns, leases and checkpoints and lost's app container only, got %+v", inv)
	}

	n.start()
	keptSt := n.waitRunning("kept")
	n.waitRunning("lost")
	lostNetns := "hoist-" + lost.pause[:24]
	waitFor(t, 30*time.Second, "lost's old sandbox torn down and one sandbox per pod", func() (bool, string) {
		inv := n.inventory()
		names, _ := nsutil.ListNamed()
		_, ckptErr := os.Stat(lostFile)
		switch {
		case len(inv.containers) != 4 || len(inv.netns) != 2 || len(inv.leases) != 2 || len(inv.sandboxes) != 2:
			return false, fmt.Sprintf("%+v", inv)
		case slices.Contains(names, lostNetns):
			return false, "netns " + lostNetns + " still there"
		case !os.IsNotExist(ckptErr):
			return false, fmt.Sprintf("checkpoint %s: %v", lostFile, ckptErr)
		case n.leaseOf(lost.pause) != "":
			return false, "host-local lease " + n.leaseOf(lost.pause) + " still held by " + lost.pause
		}
		return true, ""
	})

	now := n.taskPIDs()
	for _, id := range []string{kept.pause, kept.app} {
		if now[id] == 0 || now[id] != pids[id] {
			t.Errorf("kept's container %s ran with pid %d at the kill, now %d: restarted or removed", id, pids[id], now[id])
		}
	}
	if cs := keptSt.ContainerStatuses; len(cs) != 1 || cs[0].ContainerID != "containerd://"+kept.app || cs[0].RestartCount != 0 {
		t.Errorf("kept's container status %+v, want container %s with restart count 0", cs, kept.app)
	}
	var rebuilt struct{ ID, PodUID string }
	if b, err := os.ReadFile(keptFile); err != nil || json.Unmarshal(b, &rebuilt) != nil || rebuilt.ID != kept.pause || rebuilt.PodUID != kept.uid {
		t.Errorf("kept's checkpoint after the restart: %q (%v), want it rewritten for sandbox %s of pod %s", b, err, kept.pause, kept.uid)
	}
	if _, ok := now[lost.app]; ok {
		t.Errorf("lost's app container %s of the gone sandbox still runs", lost.app)
	}

	// The torn-down sandbox belonged to no pod: no pod worker (of UID "")
	// may have tried to kill it, and no scan may have failed on it.
	for _, bad := range []string{"pod kill failed", "orphan scan failed"} {
		if strings.Contains(n.logs.String(), bad) {
			t.Errorf("kubelet log has %q:\n%s", bad, n.logs.String())
		}
	}
	var lines []string
	for _, l := range strings.Split(n.logs.String(), "\n") {
		if strings.Contains(l, "sandbox checkpoint unreadable") {
			lines = append(lines, l)
		}
	}
	t.Logf("kubelet log on unreadable checkpoints:\n%s", strings.Join(lines, "\n"))
	want := map[string]string{keptFile: "rebuilt from its pause container", lostFile: "tearing the sandbox down"}
	if len(lines) != len(want) {
		t.Errorf("%d log lines about unreadable checkpoints, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for file, what := range want {
		found := false
		for _, l := range lines {
			found = found || strings.Contains(l, "file="+file+" ") && strings.Contains(l, what)
		}
		if !found {
			t.Errorf("no log line names %s and says %q:\n%s", file, what, strings.Join(lines, "\n"))
		}
	}
}

// podIDs are a running pod's pause and (single) app container.
type podIDs struct{ uid, pause, app string }

func (n *node) podContainers(name string) podIDs {
	n.t.Helper()
	ctrs, err := n.s.ctrd.Client().Containers(n.ctx(), fmt.Sprintf("labels.%q==%q", runtime.LabelPodName, n.podName(name)))
	if err != nil {
		n.t.Fatal(err)
	}
	var ids podIDs
	for _, c := range ctrs {
		l, err := c.Labels(n.ctx())
		if err != nil {
			n.t.Fatal(err)
		}
		ids.uid = l[runtime.LabelPodUID]
		if l[runtime.LabelKind] == string(runtime.KindSandbox) {
			ids.pause = c.ID()
		} else {
			ids.app = c.ID()
		}
	}
	if len(ctrs) != 2 || ids.pause == "" || ids.app == "" {
		n.t.Fatalf("pod %s: want a pause and an app container, got %+v of %d", name, ids, len(ctrs))
	}
	return ids
}

// deletePause kills and deletes a pause container behind the kubelet's back,
// leaving its netns and CNI attachment.
func (n *node) deletePause(id string) {
	n.t.Helper()
	c, err := n.s.ctrd.Client().LoadContainer(n.ctx(), id)
	if err != nil {
		n.t.Fatal(err)
	}
	task, err := c.Task(n.ctx(), nil)
	if err != nil {
		n.t.Fatal(err)
	}
	exited, err := task.Wait(n.ctx())
	if err != nil {
		n.t.Fatal(err)
	}
	if err := task.Kill(n.ctx(), syscall.SIGKILL); err != nil {
		n.t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		n.t.Fatalf("pause container %s did not die after SIGKILL", id)
	}
	if _, err := task.Delete(n.ctx()); err != nil && !errdefs.IsNotFound(err) {
		n.t.Fatal(err)
	}
	if err := c.Delete(n.ctx(), containerd.WithSnapshotCleanup); err != nil {
		n.t.Fatal(err)
	}
}

// leaseOf returns the host-local lease (IP) held by CNI container id, or "".
func (n *node) leaseOf(id string) string {
	dir := filepath.Join(n.ipamDir, "hst-test")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(string(b), id) {
			return e.Name()
		}
	}
	return ""
}
