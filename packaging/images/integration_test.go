package images

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/containerd/remotes/docker"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/vishvananda/netlink"

	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/internal/testenv"
)

// importBuilt builds both images and imports them into d, checking that
// names and digests survive the import.
func importBuilt(t *testing.T, ctx context.Context, d *privateContainerd) map[string]containerd.Image {
	t.Helper()
	dir, built := buildImages(t, binDir(t))
	imported, err := ImportWithClient(ctx, d.client, dir)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if len(imported) != len(built) {
		t.Fatalf("imported %+v, want %+v", imported, built)
	}
	out := map[string]containerd.Image{}
	for i := range built {
		if imported[i].Ref != built[i].Ref || imported[i].Digest != built[i].Digest {
			t.Errorf("imported %s@%s, built %s@%s", imported[i].Ref, imported[i].Digest, built[i].Ref, built[i].Digest)
		}
		img, err := d.client.GetImage(ctx, built[i].Ref)
		if err != nil {
			t.Fatalf("get %s: %v", built[i].Ref, err)
		}
		out[built[i].Ref] = img
	}
	return out
}

// runContainer starts a task from img and removes task and container when the test ends.
func runContainer(t *testing.T, ctx context.Context, d *privateContainerd, img containerd.Image, id string, opts ...oci.SpecOpts) (containerd.Container, containerd.Task, <-chan containerd.ExitStatus) {
	t.Helper()
	specOpts := append([]oci.SpecOpts{oci.WithImageConfig(img)}, opts...)
	ctr, err := d.client.NewContainer(ctx, id, containerd.WithImage(img),
		containerd.WithNewSnapshot(id, img), containerd.WithNewSpec(specOpts...))
	if err != nil {
		t.Fatalf("new container %s: %v", id, err)
	}
	t.Cleanup(func() {
		if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
			t.Errorf("delete container %s: %v", id, err)
		}
	})
	logPath := filepath.Join(t.TempDir(), id+".log")
	task, err := ctr.NewTask(ctx, cio.LogFile(logPath))
	if err != nil {
		t.Fatalf("new task %s: %v", id, err)
	}
	t.Cleanup(func() {
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil {
			t.Errorf("delete task %s: %v", id, err)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s output:\n%s", id, b)
		}
	})
	exitc, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	return ctr, task, exitc
}

// orphanSleepers execs a shell in task that starts n short sleeps in the
// background and exits at once: the sleeps are reparented to the init of the
// task's PID namespace, which must reap them when they exit.
func orphanSleepers(t *testing.T, ctx context.Context, ctr containerd.Container, task containerd.Task, n int) {
	t.Helper()
	spec, err := ctr.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := *spec.Process
	p.Args = []string{"/bin/sh", "-c", strings.Repeat("sleep 1 & ", n) + "exit 0"}
	proc, err := task.Exec(ctx, "orphans", &p, cio.NullIO)
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	exitc, err := proc.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Start(ctx); err != nil {
		t.Fatalf("start exec: %v", err)
	}
	if st := <-exitc; st.ExitCode() != 0 {
		t.Fatalf("exec exited %d", st.ExitCode())
	}
	if _, err := proc.Delete(ctx); err != nil {
		t.Fatalf("delete exec: %v", err)
	}
}

// childrenOf returns the state letter (R, S, Z, ...) of each child of ppid.
func childrenOf(t *testing.T, ppid uint32) map[int]string {
	t.Helper()
	out := map[int]string{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // not a pid, or gone
		}
		s := string(b)
		var pid, parent int
		var state string
		if i := strings.LastIndexByte(s, ')'); i < 0 {
			continue
		} else if _, err := fmt.Sscan(s[:strings.IndexByte(s, ' ')], &pid); err != nil {
			continue
		} else if _, err := fmt.Sscan(s[i+1:], &state, &parent); err != nil {
			continue
		}
		if parent == int(ppid) {
			out[pid] = state
		}
	}
	return out
}

func TestIntegrationImportAndRunPause(t *testing.T) {
	d := startContainerd(t)
	ctx := d.ctx
	imgs := importBuilt(t, ctx, d)

	_, pause, pauseExit := runContainer(t, ctx, d, imgs[PauseImage], "pause")
	// A helper container joins pause's PID namespace, as containers of a pod
	// with shareProcessNamespace do; its orphans are pause's to reap.
	pidns := fmt.Sprintf("/proc/%d/ns/pid", pause.Pid())
	ctr, helper, _ := runContainer(t, ctx, d, imgs[TestboxImage], "helper",
		oci.WithProcessArgs("/testbox", "sleep"),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.PIDNamespace, Path: pidns}))

	const n = 3
	orphanSleepers(t, ctx, ctr, helper, n)
	testenv.WaitUntil(t, 5*time.Second, "the orphaned sleeps to be reparented to pause", func() bool {
		return len(childrenOf(t, pause.Pid())) == n
	})
	testenv.WaitUntil(t, 10*time.Second, "pause to reap its exited children", func() bool {
		return len(childrenOf(t, pause.Pid())) == 0
	})

	if err := pause.Kill(ctx, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-pauseExit:
		if st.ExitCode() != 0 {
			t.Fatalf("pause exited %d on SIGTERM, want 0", st.ExitCode())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pause did not exit within 5s of SIGTERM")
	}
}

// TestIntegrationZombieCheckCatchesNonReaper runs the same check against an
// init that never reaps (testbox sleep), proving it can fail.
func TestIntegrationZombieCheckCatchesNonReaper(t *testing.T) {
	d := startContainerd(t)
	ctx := d.ctx
	imgs := importBuilt(t, ctx, d)
	ctr, task, _ := runContainer(t, ctx, d, imgs[TestboxImage], "nonreaper", oci.WithProcessArgs("/testbox", "sleep"))
	const n = 3
	orphanSleepers(t, ctx, ctr, task, n)
	zombies := func() int {
		z := 0
		for _, st := range childrenOf(t, task.Pid()) {
			if st == "Z" {
				z++
			}
		}
		return z
	}
	testenv.WaitUntil(t, 10*time.Second, "the orphans to exit", func() bool { return zombies() == n })
	time.Sleep(500 * time.Millisecond) // a property over time: the zombies must stay
	if z := zombies(); z != n {
		t.Fatalf("%d zombies left under a non-reaping init, want %d", z, n)
	}
}

func TestIntegrationImportAndRunNetexec(t *testing.T) {
	d := startContainerd(t)
	ctx := d.ctx
	imgs := importBuilt(t, ctx, d)

	nsName := testenv.UniqueName("hoist-img")
	nsPath, err := nsutil.CreateNamed(nsName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nsutil.DeleteNamed(nsName); err != nil {
			t.Errorf("delete netns %s: %v", nsName, err)
		}
	})
	if err := nsutil.Do(nsPath, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	}); err != nil {
		t.Fatalf("bring up lo in %s: %v", nsName, err)
	}

	_, task, exitc := runContainer(t, ctx, d, imgs[TestboxImage], "netexec",
		oci.WithProcessArgs("/testbox", "netexec", "--http-port=8080", "--udp-port=8081"),
		oci.WithHostname("hoist-netexec"),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: nsPath}))

	var body string
	testenv.WaitUntil(t, 15*time.Second, "GET /hostname in the pod netns", func() bool {
		body, err = testenv.HTTPGetFrom(nsPath, "http://127.0.0.1:8080/hostname")
		return err == nil
	})
	if body != "hoist-netexec" {
		t.Errorf("GET /hostname = %q, want hoist-netexec", body)
	}
	var udpReply string
	if err := nsutil.Do(nsPath, func() error {
		udpReply, err = udpExchange("127.0.0.1:8081", "echo over udp")
		return err
	}); err != nil || udpReply != "over udp" {
		t.Errorf("udp echo = %q, %v; want \"over udp\"", udpReply, err)
	}

	if err := task.Kill(ctx, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-exitc:
		if st.ExitCode() != 0 {
			t.Errorf("netexec exited %d on SIGTERM, want 0", st.ExitCode())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("netexec did not exit within 10s of SIGTERM")
	}
}

func udpExchange(addr, msg string) (string, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	return string(buf[:n]), err
}

// TestIntegrationCtrImport checks the archives with containerd's own CLI too.
func TestIntegrationCtrImport(t *testing.T) {
	ctrBin := testenv.RequireCommand(t, "ctr", "containerd")
	d := startContainerd(t)
	_, built := buildImages(t, binDir(t))
	ns := testenv.UniqueName("hoist-img")
	for _, img := range built {
		out, err := exec.Command(ctrBin, "--address", d.address, "-n", ns, "images", "import", img.Path).CombinedOutput()
		if err != nil {
			t.Fatalf("ctr images import %s: %v\n%s", img.Path, err, out)
		}
	}
	out, err := exec.Command(ctrBin, "--address", d.address, "-n", ns, "images", "ls").CombinedOutput()
	if err != nil {
		t.Fatalf("ctr images ls: %v\n%s", err, out)
	}
	for _, img := range built {
		if !strings.Contains(string(out), img.Ref+" ") || !strings.Contains(string(out), img.Digest) {
			t.Errorf("ctr images ls lacks %s@%s:\n%s", img.Ref, img.Digest, out)
		}
	}
}

func TestIntegrationRegistryPushPull(t *testing.T) {
	testenv.RequireCommand(t, "docker-registry", "docker-registry")
	d := startContainerd(t)
	ctx := d.ctx
	dir, built := buildImages(t, binDir(t))

	reg, err := StartRegistry(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	pushed, err := reg.Push(context.Background(), dir)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchLocalhost)),
	})
	for i, p := range pushed {
		want := reg.Addr() + "/" + built[i].Ref
		if p.Ref != want {
			t.Errorf("pushed as %s, want %s", p.Ref, want)
		}
		img, err := d.client.Pull(ctx, p.Ref, containerd.WithResolver(resolver), containerd.WithPullUnpack)
		if err != nil {
			t.Fatalf("pull %s: %v", p.Ref, err)
		}
		if got := img.Target().Digest.String(); got != built[i].Digest {
			t.Errorf("pulled %s with digest %s, built %s", p.Ref, got, built[i].Digest)
		}
	}
}
