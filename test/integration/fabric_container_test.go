package integration

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/internal/testenv/ctrdtest"
	"github.com/hoist-project/hoist/packaging/images"
)

// TestIntegrationTestboxAcrossFabric proves the foundation end to end: the
// testbox image is built and imported into a private containerd, netexec runs
// in a container whose network namespace is fabric node n0, and node n1 and
// the root namespace reach it across the fabric bridge.
func TestIntegrationTestboxAcrossFabric(t *testing.T) {
	f := testenv.Fabric(t, 2)
	d := ctrdtest.StartContainerd(t)
	ctx := namespaces.WithNamespace(context.Background(), d.Namespace)

	binDir := filepath.Dir(testenv.Binary(t, "testbox"))
	testenv.Binary(t, "pause") // Build wants both binaries in binDir
	out := t.TempDir()
	if _, err := images.Build(ctx, images.BuildOptions{OutDir: out, BinDir: binDir}); err != nil {
		t.Fatal(err)
	}
	if _, err := images.ImportWithClient(ctx, d.Client(), out); err != nil {
		t.Fatal(err)
	}
	img, err := d.Client().GetImage(ctx, images.TestboxImage)
	if err != nil {
		t.Fatal(err)
	}

	server, client := f.Nodes()[0], f.Nodes()[1]
	ctr, err := d.Client().NewContainer(ctx, "netexec", containerd.WithImage(img),
		containerd.WithNewSnapshot("netexec", img),
		containerd.WithNewSpec(oci.WithImageConfig(img),
			oci.WithProcessArgs("/testbox", "netexec", "--http-port=8080"),
			oci.WithHostname("netexec-on-"+server.Name),
			oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: server.NetnsPath})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctr.Delete(ctx, containerd.WithSnapshotCleanup) })
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = task.Delete(ctx, containerd.WithProcessKill) })
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}

	addr := net.JoinHostPort(server.IP.String(), "8080")
	want := "netexec-on-" + server.Name
	var got string
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err = testenv.HTTPGetFrom(client.NetnsPath, "http://"+addr+"/hostname")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || got != want {
		t.Fatalf("GET %s/hostname from node %s = %q, %v; want %q", addr, client.Name, got, err, want)
	}
	if got, err := testenv.HTTPGetFrom("", "http://"+addr+"/hostname"); err != nil || got != want {
		t.Fatalf("GET %s/hostname from the root namespace = %q, %v; want %q", addr, got, err, want)
	}
}
