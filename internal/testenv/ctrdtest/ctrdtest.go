// Package ctrdtest gives a test its own private containerd daemon (see
// internal/fabric/ctrd), stopped and cleaned up when the test ends. It lives
// apart from testenv so that tests which do not need containerd do not link
// its client.
package ctrdtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/oci"

	"github.com/hoist-project/hoist/internal/fabric/ctrd"
	"github.com/hoist-project/hoist/internal/testenv"
)

// Containerd is a test's private daemon: Address, Client() and Namespace (unique
// per test) are what callers use; the system containerd is never involved.
type Containerd = ctrd.Daemon

// StartContainerd starts a private containerd for t (own root, state and
// sockets under a short temp dir) and registers its teardown with t.Cleanup:
// all tasks killed, daemon stopped, mounts detached, directories removed.
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	testenv.RequireRoot(t)
	if !onPath("containerd") || !onPath("runc") {
		t.Fatal("containerd or runc not found on PATH: " + ctrd.MissingHint)
	}
	d, err := ctrd.Start(context.Background(), ctrd.Config{Namespace: testenv.UniqueName("hoist-t")})
	if err != nil {
		t.Fatalf("start private containerd: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Stop(context.Background()); err != nil {
			t.Errorf("stop private containerd %s: %v", d.Dir, err)
		}
	})
	return d
}

func onPath(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// StartBusyboxTask runs busybox (from the busybox-static package) with args
// as container id in d's namespace, from a bare rootfs directory under d.Dir
// (no image needed), and returns the task's pid. The daemon's teardown kills it.
func StartBusyboxTask(t testing.TB, d *Containerd, id string, args ...string) int {
	t.Helper()
	busybox := testenv.RequireCommand(t, "busybox", "busybox-static")
	ctx := context.Background()
	rootfs := filepath.Join(d.Dir, "rootfs-"+id)
	if err := os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	ctr, err := d.Client().NewContainer(ctx, id, containerd.WithNewSpec(
		oci.WithRootFSPath(rootfs), oci.WithProcessArgs(append([]string{"/bin/busybox"}, args...)...)))
	if err != nil {
		t.Fatalf("new container %s: %v", id, err)
	}
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatalf("new task %s: %v", id, err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("start task %s: %v", id, err)
	}
	return int(task.Pid())
}
