package podsync

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/hoist-project/hoist/kubelet/lifecycle"
	"github.com/hoist-project/hoist/kubelet/probes"
	"github.com/hoist-project/hoist/kubelet/runtime"
)

// hookCall is one hook handler run as the fake saw it.
type hookCall struct {
	cmd, id, ip string
	running     bool // the container was still running when the hook ran
}

type fakeHooks struct {
	rt    *fakeRuntime
	calls []hookCall
	fail  map[string]bool // command -> fails
	took  time.Duration   // advances the clock by this per run
	clock *time.Time
}

func (f *fakeHooks) RunHandler(_ context.Context, t probes.Target, h v1.ProbeHandler) error {
	running := false
	for _, p := range f.rt.pods {
		for _, c := range p.Containers {
			running = running || (c.ID == t.ContainerID && c.State == runtime.StateRunning)
		}
	}
	cmd := strings.Join(h.Exec.Command, " ")
	f.calls = append(f.calls, hookCall{cmd: cmd, id: t.ContainerID, ip: t.PodIP, running: running})
	*f.clock = f.clock.Add(f.took)
	if f.fail[cmd] {
		return errors.New("exited with 1")
	}
	return nil
}

// graceRuntime records the grace each container was removed with.
type graceRuntime struct {
	*fakeRuntime
	graces []time.Duration
}

func (g *graceRuntime) RemoveContainer(ctx context.Context, id string, grace time.Duration) error {
	g.graces = append(g.graces, grace)
	return g.fakeRuntime.RemoveContainer(ctx, id, grace)
}

func withHooks(h *harness, lc *v1.Lifecycle) (*fakeHooks, *record.FakeRecorder) {
	hooks := &fakeHooks{rt: h.rt, fail: map[string]bool{}, clock: &h.clock}
	events := record.NewFakeRecorder(10)
	h.s.Hooks = &lifecycle.Runner{Handlers: hooks, Now: func() time.Time { return h.clock }}
	h.s.Events = events
	h.pod.Spec.Containers[0].Lifecycle = lc
	return hooks, events
}

func exec(cmd ...string) *v1.LifecycleHandler {
	return &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: cmd}}
}

func TestPostStartRunsRightAfterStart(t *testing.T) {
	h := newHarness(t, v1.RestartPolicyAlways)
	hooks, events := withHooks(h, &v1.Lifecycle{PostStart: exec("warm", "up")})
	h.sync()
	h.expectStarted("app/0")
	if len(hooks.calls) != 1 || hooks.calls[0] != (hookCall{cmd: "warm up", id: "c2", ip: "10.0.0.9", running: true}) {
		t.Fatalf("hook calls %+v", hooks.calls)
	}
	h.sync() // already running: no second run
	if len(hooks.calls) != 1 || len(events.Events) != 0 {
		t.Fatalf("hook calls %+v, %d events", hooks.calls, len(events.Events))
	}
}

func TestFailingPostStartKillsAndRestartsTheContainer(t *testing.T) {
	h := newHarness(t, v1.RestartPolicyAlways)
	hooks, events := withHooks(h, &v1.Lifecycle{PostStart: exec("false")})
	hooks.fail["false"] = true
	h.sync()
	if c := h.rt.pods["u1"].Containers[0]; c.State != runtime.StateExited {
		t.Fatalf("container %s after a failed postStart, want exited", c.State)
	}
	select {
	case e := <-events.Events:
		if !strings.HasPrefix(e, "Warning FailedPostStartHook") || !strings.Contains(e, "exited with 1") {
			t.Fatalf("event %q", e)
		}
	default:
		t.Fatal("no FailedPostStartHook event")
	}
	h.sync() // first failure restarts at once
	h.expectStarted("app/0", "app/1")
}

func TestPreStopRunsBeforeKillWithinTheGrace(t *testing.T) {
	h := newHarness(t, v1.RestartPolicyAlways)
	gr := &graceRuntime{fakeRuntime: h.rt}
	h.s.Runtime = gr
	hooks, events := withHooks(h, &v1.Lifecycle{PreStop: exec("drain")})
	hooks.took = 4 * time.Second
	g := int64(10)
	h.pod.Spec.TerminationGracePeriodSeconds = &g
	h.sync()
	if err := h.s.KillPod(context.Background(), h.pod); err != nil {
		t.Fatal(err)
	}
	if len(hooks.calls) != 1 || hooks.calls[0].cmd != "drain" || !hooks.calls[0].running {
		t.Fatalf("preStop calls %+v, want one while the container ran", hooks.calls)
	}
	if len(gr.graces) != 1 || gr.graces[0] != 6*time.Second {
		t.Fatalf("removed with graces %v, want [6s] (10s minus the hook's 4s)", gr.graces)
	}
	if len(events.Events) != 0 {
		t.Fatalf("unexpected event %q", <-events.Events)
	}
}

func TestPreStopRunsOnSpecChangeAndLivenessKill(t *testing.T) {
	h := newHarness(t, v1.RestartPolicyAlways)
	hooks, events := withHooks(h, &v1.Lifecycle{PreStop: exec("drain")})
	hooks.fail["drain"] = true
	h.sync()
	h.pod.Spec.Containers[0].Image = "img2"
	h.sync()
	h.expectStarted("app/0", "app/1")
	if len(hooks.calls) != 1 || hooks.calls[0].id != "c2" || !hooks.calls[0].running {
		t.Fatalf("preStop calls %+v, want one for c2 before its removal", hooks.calls)
	}
	if e := <-events.Events; !strings.HasPrefix(e, "Warning FailedPreStopHook") {
		t.Fatalf("event %q", e)
	}
	pr := &fakeProber{kill: map[string]string{"c3": "failed liveness probe"}}
	h.s.Probes = pr
	h.sync()
	if len(hooks.calls) != 2 || hooks.calls[1].id != "c3" {
		t.Fatalf("preStop calls %+v, want a second one for c3", hooks.calls)
	}
}

func TestStopPodCapsTheGrace(t *testing.T) {
	h := newHarness(t, v1.RestartPolicyAlways)
	gr := &graceRuntime{fakeRuntime: h.rt}
	h.s.Runtime = gr
	g := int64(30)
	h.pod.Spec.TerminationGracePeriodSeconds = &g
	h.sync()
	if err := h.s.StopPod(context.Background(), h.pod, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := h.s.StopPod(context.Background(), h.pod, -1); err != nil { // nothing left: no grace used
		t.Fatal(err)
	}
	if len(gr.graces) != 1 || gr.graces[0] != 5*time.Second {
		t.Fatalf("removed with graces %v, want [5s] (30s capped at 5s)", gr.graces)
	}
	if p := h.rt.pods["u1"]; len(p.Sandboxes)+len(p.Containers) != 0 {
		t.Fatalf("left %+v %+v", p.Sandboxes, p.Containers)
	}
}
