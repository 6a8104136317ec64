package fabric_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hoist-project/hoist/internal/fabric"
	"github.com/hoist-project/hoist/internal/fabric/ctrd"
	"github.com/hoist-project/hoist/internal/fabric/record"
	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/internal/testenv/ctrdtest"
)

// childEnv makes the re-executed test binary play the crashing run.
const childEnv = "HOIST_SWEEP_CHILD"

// TestIntegrationSweepAfterKill kills -9 a process that holds a fabric, a
// private containerd with a running task and a mount, then checks that Sweep
// removes every trace of it.
func TestIntegrationSweepAfterKill(t *testing.T) {
	testenv.RequireRoot(t)
	if name := os.Getenv(childEnv); name != "" {
		crashingChild(t, name)
		return
	}
	name := testenv.UniqueName("k")
	child := exec.Command(os.Args[0], "-test.run=^TestIntegrationSweepAfterKill$", "-test.count=1")
	child.Env = append(os.Environ(), childEnv+"="+name)
	child.Stderr = os.Stderr
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			child.Process.Kill()
			child.Wait()
		}
	})
	var ctdDir string
	var ctdPID, taskPID int
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if _, err := fmt.Sscanf(sc.Text(), "READY %s %d %d", &ctdDir, &ctdPID, &taskPID); err == nil {
				ready <- nil
				return
			}
		}
		ready <- fmt.Errorf("child exited before it was ready: %v", sc.Err())
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("child not ready within 60s")
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	killed = true

	// The leftovers really are there before the sweep.
	if _, err := netlink.LinkByName(fabric.LinkPrefix + name); err != nil {
		t.Fatalf("precondition: child's root link missing: %v", err)
	}
	if !processRuns(ctdPID) {
		t.Fatalf("precondition: child's containerd %d is not running", ctdPID)
	}

	removed, err := fabric.Sweep(context.Background(), fabric.SweepOptions{})
	if err != nil {
		t.Fatalf("Sweep: %v (removed %v)", err, removed)
	}
	t.Logf("swept: %v", removed)
	if !containsLine(removed, "fabric "+name+" ") || !containsLine(removed, ctdDir) {
		t.Errorf("Sweep reported %v; want fabric %s and containerd %s", removed, name, ctdDir)
	}
	for _, pid := range []int{ctdPID, taskPID} {
		if err := waitGone(pid, 10*time.Second); err != nil {
			t.Error(err)
		}
	}
	assertNothingLeft(t, fabric.State{Name: name, HostLink: fabric.LinkPrefix + name})
	if mounts, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(ctdDir)); len(mounts) != 0 {
		t.Errorf("%d mounts left under %s", len(mounts), ctdDir)
	}
	if _, err := os.Stat(ctdDir); !os.IsNotExist(err) {
		t.Errorf("containerd dir %s left behind (stat: %v)", ctdDir, err)
	}
}

// crashingChild builds what a run would hold, reports it, and blocks until killed.
func crashingChild(t *testing.T, name string) {
	f, err := fabric.Create(context.Background(), fabric.Config{Name: name, Nodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	d, err := ctrd.Start(context.Background(), ctrd.Config{Namespace: "hoist-" + name})
	if err != nil {
		f.Destroy()
		t.Fatal(err)
	}
	taskPID := ctrdtest.StartBusyboxTask(t, d, "sleeper", "sleep", "600")
	leftover := filepath.Join(d.Dir, "state", "leftover")
	if err := os.MkdirAll(leftover, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", leftover, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("READY %s %d %d\n", d.Dir, d.PID, taskPID)
	select {} // until SIGKILL
}

func containsLine(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

func processRuns(pid int) bool {
	start, err := record.StartTime(pid)
	return err == nil && record.Running(pid, start)
}

// waitGone waits until pid no longer runs (a zombie awaiting its reaper counts as gone).
func waitGone(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for processRuns(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d still runs after %v", pid, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
