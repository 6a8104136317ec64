package podsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hoist-project/hoist/kubelet/backoff"
	"github.com/hoist-project/hoist/kubelet/images"
	"github.com/hoist-project/hoist/kubelet/probes"
	"github.com/hoist-project/hoist/kubelet/runtime"
	"github.com/hoist-project/hoist/kubelet/status"
	"github.com/hoist-project/hoist/kubelet/volumes"
)

// fakeRuntime keeps pods in memory; tests make containers exit by hand.
type fakeRuntime struct {
	now     func() time.Time
	pods    map[types.UID]*runtime.Pod
	seq     int
	started []string // "name/restart" in start order
	cgroups []types.UID
}

func (f *fakeRuntime) pod(uid types.UID) *runtime.Pod {
	if f.pods[uid] == nil {
		f.pods[uid] = &runtime.Pod{UID: uid}
	}
	return f.pods[uid]
}

func (f *fakeRuntime) GetPod(_ context.Context, uid types.UID) (*runtime.Pod, error) {
	p := *f.pod(uid) // a snapshot, like a real listing
	p.Containers = nil
	for _, c := range f.pod(uid).Containers {
		cc := *c
		p.Containers = append(p.Containers, &cc)
	}
	return &p, nil
}

func (f *fakeRuntime) CreateSandbox(_ context.Context, pod *v1.Pod) (*runtime.Sandbox, error) {
	f.seq++
	sb := &runtime.Sandbox{ID: fmt.Sprintf("sb%d", f.seq), IP: net.ParseIP("10.0.0.9"), Running: true, CreatedAt: f.now()}
	p := f.pod(pod.UID)
	p.Sandboxes = append(p.Sandboxes, sb)
	return sb, nil
}

func (f *fakeRuntime) RemoveSandbox(_ context.Context, pod *runtime.Pod, sb *runtime.Sandbox) error {
	p := f.pod(pod.UID)
	for i, s := range p.Sandboxes {
		if s.ID == sb.ID {
			p.Sandboxes = append(p.Sandboxes[:i], p.Sandboxes[i+1:]...)
			break
		}
	}
	return nil
}

func (f *fakeRuntime) StartContainer(_ context.Context, s runtime.StartSpec) (string, error) {
	f.seq++
	id := fmt.Sprintf("c%d", f.seq)
	p := f.pod(s.Pod.UID)
	p.Containers = append(p.Containers, &runtime.Container{
		ID: id, Name: s.Container.Name, Kind: s.Kind, SandboxID: s.Sandbox.ID, Restart: s.Restart,
		Hash: runtime.ContainerHash(s.Container), State: runtime.StateRunning, StartedAt: f.now(), Last: s.Last,
	})
	f.started = append(f.started, fmt.Sprintf("%s/%d", s.Container.Name, s.Restart))
	return id, nil
}

func (f *fakeRuntime) RemoveContainer(_ context.Context, id string, _ time.Duration) error {
	for _, p := range f.pods {
		for i, c := range p.Containers {
			if c.ID == id {
				p.Containers = append(p.Containers[:i], p.Containers[i+1:]...)
				return nil
			}
		}
	}
	return nil
}

func (f *fakeRuntime) StopContainer(_ context.Context, id string, _ time.Duration) error {
	for _, p := range f.pods {
		for _, c := range p.Containers {
			if c.ID == id && c.State == runtime.StateRunning {
				c.State = runtime.StateExited
				c.Exit = &runtime.Exit{Code: 137, StartedAt: c.StartedAt, FinishedAt: f.now()}
			}
		}
	}
	return nil
}

func (f *fakeRuntime) RemovePodCgroup(uid types.UID) error {
	f.cgroups = append(f.cgroups, uid)
	return nil
}

func (f *fakeRuntime) PodLogDir(ns, name, uid string) string { return "/nonexistent/hoist-test/" + uid }

// exit makes the running container name exit with code now.
func (f *fakeRuntime) exit(t *testing.T, uid types.UID, name string, code int) {
	t.Helper()
	for _, c := range f.pod(uid).Containers {
		if c.Name == name && c.State == runtime.StateRunning {
			c.State = runtime.StateExited
			c.Exit = &runtime.Exit{Code: code, StartedAt: c.StartedAt, FinishedAt: f.now()}
			return
		}
	}
	t.Fatalf("no running container %s", name)
}

type harness struct {
	t     *testing.T
	clock time.Time
	rt    *fakeRuntime
	s     *Syncer
	pod   *v1.Pod
}

func newHarness(t *testing.T, policy v1.RestartPolicy, inits ...string) *harness {
	h := &harness{t: t, clock: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	h.rt = &fakeRuntime{now: func() time.Time { return h.clock }, pods: map[types.UID]*runtime.Pod{}}
	h.s = &Syncer{
		Runtime: h.rt, Volumes: &volumes.Manager{Root: t.TempDir()}, Status: status.NewManager(nil),
		Backoff: backoff.Default(), Now: func() time.Time { return h.clock }, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	h.pod = &v1.Pod{}
	h.pod.UID, h.pod.Name, h.pod.Namespace = "u1", "p", "default"
	h.pod.Spec.RestartPolicy = policy
	for _, n := range inits {
		h.pod.Spec.InitContainers = append(h.pod.Spec.InitContainers, v1.Container{Name: n, Image: "img"})
	}
	h.pod.Spec.Containers = []v1.Container{{Name: "app", Image: "img"}}
	return h
}

func (h *harness) sync() time.Duration {
	h.t.Helper()
	wait, err := h.s.SyncPod(context.Background(), h.pod)
	if err != nil {
		h.t.Fatal(err)
	}
	return wait
}

func (h *harness) advance(d time.Duration) { h.clock = h.clock.Add(d) }

func (h *harness) expectStarted(want ...string) {
	h.t.Helper()
	if fmt.Sprint(h.rt.started) != fmt.Sprint(want) {
		h.t.Fatalf("started %v, want %v", h.rt.started, want)
	}
}

func (h *harness) status() v1.PodStatus {
	st, _ := h.s.Status.Get(h.pod.UID)
	return st
}

func TestInitContainersRunOneAfterAnother(t *testing.T) {
	h := newHarness(t, v1.RestartPolicyAlways, "i1", "i2")
	h.sync()
	h.expectStarted("i1/0")
	h.sync()
	h.expectStarted("i1/0") // still running: wait
	h.rt.exit(t, "u1", "i1", 0)
	h.sync()
	h.expectStarted("i1/0", "i2/0")
	if st := h.status(); st.Phase != v1.PodPending {
		t.Fatalf("phase %s while initialising", st.Phase)
	}
	h.rt.exit(t, "u1", "i2", 0)
	h.sync()
	h.expectStarted("i1/0", "i2/0", "app/0")
	if st := h.status(); st.Phase != v1.PodRunning {
		t.Fatalf("phase %s, want Running", st.Phase)
	}
}

func TestFailedInitContainerRetriedWithBackoff(t *testing.T) {
	h := newHarness(t, v1.RestartPolicyAlways, "i1")
	h.sync()
	h.rt.exit(t, "u1", "i1", 1)
	h.sync()
	h.expectStarted("i1/0", "i1/1") // first failure: at once
	h.advance(time.Second)
	h.rt.exit(t, "u1", "i1", 1)
	if wait := h.sync(); wait != 10*time.Second {
		t.Fatalf("wait %v, want 10s", wait)
	}
	h.expectStarted("i1/0", "i1/1")
}

func TestCrashLoopBackOffScript(t *testing.T) {
	h := newHarness(t, v1.RestartPolicyAlways)
	h.sync()
	h.expectStarted("app/0")
	for i, want := range []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second} {
		h.advance(time.Second)
		h.rt.exit(t, "u1", "app", 2)
		wait := h.sync()
		if want == 0 {
			if len(h.rt.started) != i+2 {
				t.Fatalf("step %d: first crash must restart at once: %v", i, h.rt.started)
			}
			continue
		}
		if wait != want {
			t.Fatalf("step %d: wait %v, want %v", i, wait, want)
		}
		cs := h.status().ContainerStatuses[0]
		if cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" {
			t.Fatalf("step %d: state %+v", i, cs.State)
		}
		if h.status().Phase != v1.PodRunning {
			t.Fatalf("step %d: a crash-looping pod stays Running, got %s", i, h.status().Phase)
		}
		h.advance(want - time.Millisecond)
		if h.sync(); len(h.rt.started) != i+1 {
			t.Fatalf("step %d: restarted before the back-off ended: %v", i, h.rt.started)
		}
		h.advance(time.Millisecond)
		h.sync()
		if len(h.rt.started) != i+2 {
			t.Fatalf("step %d: not restarted after the back-off: %v", i, h.rt.started)
		}
	}
	cs := h.status().ContainerStatuses[0]
	if cs.RestartCount != 4 || cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 2 {
		t.Fatalf("status %+v", cs)
	}
}

func TestRestartPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy  v1.RestartPolicy
		code    int
		restart bool
		phase   v1.PodPhase
	}{
		{v1.RestartPolicyAlways, 0, true, v1.PodRunning},
		{v1.RestartPolicyOnFailure, 0, false, v1.PodSucceeded},
		{v1.RestartPolicyOnFailure, 1, true, v1.PodRunning},
		{v1.RestartPolicyNever, 1, false, v1.PodFailed},
		{v1.RestartPolicyNever, 0, false, v1.PodSucceeded},
	} {
		h := newHarness(t, tc.policy)
		h.sync()
		h.rt.exit(t, "u1", "app", tc.code)
		h.sync()
		if restarted := len(h.rt.started) == 2; restarted != tc.restart {
			t.Errorf("%s exit %d: restarted=%v, want %v", tc.policy, tc.code, restarted, tc.restart)
		}
		if st := h.status(); st.Phase != tc.phase {
			t.Errorf("%s exit %d: phase %s, want %s", tc.policy, tc.code, st.Phase, tc.phase)
		}
	}
}

func TestSpecChangeRestartsContainerOnly(t *testing.T) {
	h := newHarness(t, v1.RestartPolicyAlways)
	h.sync()
	h.pod.Spec.Containers[0].Image = "img2"
	h.sync()
	h.expectStarted("app/0", "app/1")
	if n := len(h.rt.pods["u1"].Sandboxes); n != 1 {
		t.Fatalf("%d sandboxes, want the same one", n)
	}
	h.sync()
	h.expectStarted("app/0", "app/1") // nothing to do any more
}

func TestDeadSandboxIsReplaced(t *testing.T) {
	h := newHarness(t, v1.RestartPolicyAlways)
	h.sync()
	h.rt.pods["u1"].Sandboxes[0].Running = false
	h.sync()
	p := h.rt.pods["u1"]
	if len(p.Sandboxes) != 1 || p.Sandboxes[0].ID == "sb1" || len(p.Containers) != 1 || p.Containers[0].SandboxID != p.Sandboxes[0].ID {
		t.Fatalf("want one new sandbox with the app in it, got %+v %+v", p.Sandboxes, p.Containers)
	}
}

func TestKillPodRemovesEverything(t *testing.T) {
	h := newHarness(t, v1.RestartPolicyAlways, "i1")
	h.sync()
	if err := h.s.KillPod(context.Background(), h.pod); err != nil {
		t.Fatal(err)
	}
	p := h.rt.pods["u1"]
	if len(p.Sandboxes)+len(p.Containers) != 0 || len(h.rt.cgroups) != 1 {
		t.Fatalf("left %+v %+v, cgroups removed %v", p.Sandboxes, p.Containers, h.rt.cgroups)
	}
	if _, ok := h.s.Status.Get("u1"); ok {
		t.Fatal("status of a killed pod must be forgotten")
	}
}

// fakeProber reports fixed probe states per container ID.
type fakeProber struct {
	ready  map[string]bool
	kill   map[string]string
	synced []string
	forgot bool
}

func (p *fakeProber) Sync(_ context.Context, _ *v1.Pod, _ string, running []probes.Running) {
	p.synced = nil
	for _, r := range running {
		p.synced = append(p.synced, r.ID)
	}
}

func (p *fakeProber) Apply(st *v1.PodStatus) {
	for i := range st.ContainerStatuses {
		cs := &st.ContainerStatuses[i]
		cs.Ready = p.ready[strings.TrimPrefix(cs.ContainerID, "containerd://")]
	}
}

func (p *fakeProber) State(id string) (bool, bool, string, bool) {
	return p.ready[id], true, p.kill[id], true
}
func (p *fakeProber) Forget(types.UID) { p.forgot = true }

func TestProbesDriveReadinessAndLivenessRestarts(t *testing.T) {
	h := newHarness(t, v1.RestartPolicyAlways)
	pr := &fakeProber{ready: map[string]bool{}, kill: map[string]string{}}
	h.s.Probes = pr
	h.sync()
	id := h.rt.pod("u1").Containers[0].ID
	if fmt.Sprint(pr.synced) != fmt.Sprint([]string{id}) {
		t.Fatalf("probe manager saw %v, want [%s]", pr.synced, id)
	}
	if h.status().ContainerStatuses[0].Ready {
		t.Fatal("container ready although its probe says not")
	}
	pr.ready[id] = true
	h.sync()
	if !h.status().ContainerStatuses[0].Ready {
		t.Fatal("probe result not applied to the status")
	}
	pr.kill[id] = "Liveness probe failed: HTTP probe failed with statuscode: 500"
	h.sync() // stops it
	h.sync() // restarts it
	h.expectStarted("app/0", "app/1")
	if cs := h.status().ContainerStatuses[0]; cs.RestartCount != 1 || cs.LastTerminationState.Terminated == nil {
		t.Fatalf("after a liveness failure: restartCount %d lastState %+v", cs.RestartCount, cs.LastTerminationState)
	}
	if err := h.s.KillPod(context.Background(), h.pod); err != nil || !pr.forgot {
		t.Fatalf("kill: err=%v, probes forgotten=%v", err, pr.forgot)
	}
}

// fakeImages fails pulls with err until it is cleared; sandboxErr fails
// the sandbox image.
type fakeImages struct {
	err, sandboxErr error
	sandboxImages   []string
}

func (f *fakeImages) EnsureSandboxImage(_ context.Context, ref string) (string, error) {
	f.sandboxImages = append(f.sandboxImages, ref)
	return ref, f.sandboxErr
}

func (f *fakeImages) Ensure(_ context.Context, _ *v1.Pod, c *v1.Container) (string, error) {
	if f.err != nil {
		return "", f.err
	}
	return "pulled/" + c.Image, nil
}

func (f *fakeImages) Forget(*v1.Pod) {}

func TestMissingImageMakesContainerWaitAndKeepsItsLastRun(t *testing.T) {
	h := newHarness(t, v1.RestartPolicyAlways)
	imgs := &fakeImages{err: &images.Error{Reason: images.ReasonErrImagePull, Message: "not found"}}
	h.s.Images = imgs
	if wait := h.sync(); wait != time.Second {
		t.Fatalf("wait %v after a failed pull, want 1s (to show ImagePullBackOff)", wait)
	}
	h.expectStarted()
	if w := h.status().ContainerStatuses[0].State.Waiting; w == nil || w.Reason != images.ReasonErrImagePull || w.Message != "not found" {
		t.Fatalf("waiting %+v", w)
	}
	imgs.err = nil
	h.sync()
	h.expectStarted("app/0")
	// A restart whose image cannot be had keeps the exited run (lastState).
	h.rt.exit(t, "u1", "app", 1)
	imgs.err = &images.Error{Reason: images.ReasonImagePullBackOff, Message: "back-off"}
	h.sync()
	h.expectStarted("app/0")
	st := h.status().ContainerStatuses[0]
	if st.State.Waiting == nil || st.State.Waiting.Reason != images.ReasonImagePullBackOff || st.LastTerminationState.Terminated == nil {
		t.Fatalf("status %+v", st)
	}
	if len(h.rt.pod("u1").Containers) != 1 {
		t.Fatalf("the exited run must be kept until its replacement starts: %+v", h.rt.pod("u1").Containers)
	}
}

func TestSandboxImageIsEnsuredBeforeTheSandbox(t *testing.T) {
	h := newHarness(t, v1.RestartPolicyAlways)
	imgs := &fakeImages{sandboxErr: errors.New("pull sandbox image \"reg/pause:3.10\": not found")}
	h.s.Images, h.s.PauseImage = imgs, "reg/pause:3.10"
	if _, err := h.s.SyncPod(context.Background(), h.pod); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("sync with the pause image missing: %v, want the pull error", err)
	}
	if p := h.rt.pods["u1"]; p != nil && len(p.Sandboxes) > 0 {
		t.Fatalf("sandbox created without its image: %+v", p.Sandboxes)
	}
	imgs.sandboxErr = nil
	h.sync()
	h.expectStarted("app/0")
	if fmt.Sprint(imgs.sandboxImages) != "[reg/pause:3.10 reg/pause:3.10]" {
		t.Fatalf("sandbox image ensured %v, want once per sandbox creation attempt", imgs.sandboxImages)
	}
	h.sync() // the sandbox exists: nothing to ensure
	if len(imgs.sandboxImages) != 2 {
		t.Fatalf("sandbox image ensured again for a running sandbox: %v", imgs.sandboxImages)
	}
}
