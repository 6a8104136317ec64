package ctrd_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/hoist-project/hoist/internal/fabric/ctrd"
	"github.com/hoist-project/hoist/internal/fabric/record"
	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/internal/testenv/ctrdtest"
)

// TestIntegrationPrivateContainerd starts a private daemon, runs a task in
// it, and checks that Stop leaves no process, mount, directory or record.
func TestIntegrationPrivateContainerd(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	d, err := ctrd.Start(ctx, ctrd.Config{Namespace: testenv.UniqueName("hoist-t")})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			d.Stop(ctx)
		}
	})
	if len(d.Address) >= 108 || !strings.HasPrefix(d.Address, d.Dir) {
		t.Fatalf("address %q: want a short socket under %s", d.Address, d.Dir)
	}
	v, err := d.Client().Version(ctx)
	if err != nil {
		t.Fatalf("Version: %v", err)
	}
	if v.Version == "" {
		t.Fatal("Version returned an empty version")
	}
	if _, err := os.Stat(filepath.Join(d.Dir, "root")); err != nil {
		t.Fatalf("daemon does not use its private root: %v", err)
	}
	recPath := filepath.Join(ctrd.DefaultRecordDir, filepath.Base(d.Dir)+".json")
	var rec ctrd.Record
	if err := record.Read(recPath, &rec); err != nil || rec.PID != d.PID {
		t.Fatalf("record %s: %+v, %v; want pid %d", recPath, rec, err, d.PID)
	}

	taskPID := ctrdtest.StartBusyboxTask(t, d, "sleeper", "sleep", "600")
	// A mount under the state dir stands in for a rootfs the runtime left behind.
	extra := filepath.Join(d.Dir, "state", "leftover")
	if err := os.MkdirAll(extra, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", extra, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}

	if err := d.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	stopped = true
	assertGone(t, leftovers{dir: d.Dir, recordPath: recPath, namespace: d.Namespace, pids: []int{d.PID, taskPID}})
}

// leftovers describes what a stopped daemon must no longer have.
type leftovers struct {
	dir, recordPath, namespace string
	pids                       []int
}

func assertGone(t *testing.T, l leftovers) {
	t.Helper()
	for _, pid := range l.pids {
		waitNoProcess(t, pid)
	}
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(l.dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 0 {
		t.Errorf("%d mounts left under %s, first %s", len(mounts), l.dir, mounts[0].Mountpoint)
	}
	for _, p := range []string{l.dir, l.recordPath} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still exists (stat: %v)", p, err)
		}
	}
	if cg, _ := filepath.Glob("/sys/fs/cgroup/*/" + l.namespace); len(cg) != 0 {
		t.Errorf("cgroups of namespace %s left: %v", l.namespace, cg)
	}
}

// waitNoProcess waits until pid is gone or a zombie (its reaper may be slow).
func waitNoProcess(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		start, err := record.StartTime(pid)
		if err != nil || !record.Running(pid, start) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("process %d still runs", pid)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIntegrationStartContainerdHelper checks the testing wrapper: unique
// namespace, answering daemon, cleanup registered.
func TestIntegrationStartContainerdHelper(t *testing.T) {
	var l leftovers
	t.Run("use", func(t *testing.T) {
		d := ctrdtest.StartContainerd(t)
		if d.Namespace == "" || d.Namespace == "default" || d.Namespace == "k8s.io" {
			t.Fatalf("namespace %q is not unique to the test", d.Namespace)
		}
		if _, err := d.Client().Version(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctrdtest.StartBusyboxTask(t, d, "sleeper", "sleep", "600")
		l = leftovers{dir: d.Dir, namespace: d.Namespace, pids: []int{d.PID},
			recordPath: filepath.Join(ctrd.DefaultRecordDir, filepath.Base(d.Dir)+".json")}
	})
	assertGone(t, l)
}
