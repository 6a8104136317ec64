package status

import (
	"net"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/hoist-project/hoist/kubelet/runtime"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testPod(policy v1.RestartPolicy, inits ...string) *v1.Pod {
	p := &v1.Pod{}
	p.UID, p.Name, p.Namespace = "u1", "p", "default"
	p.Spec.RestartPolicy = policy
	for _, n := range inits {
		p.Spec.InitContainers = append(p.Spec.InitContainers, v1.Container{Name: n, Image: "i"})
	}
	p.Spec.Containers = []v1.Container{{Name: "app", Image: "i"}}
	return p
}

func sandbox() *runtime.Sandbox {
	return &runtime.Sandbox{ID: "sb", IP: net.ParseIP("10.0.0.5"), Running: true, CreatedAt: t0}
}

func ctr(name string, kind runtime.Kind, state runtime.State, code int) *runtime.Container {
	c := &runtime.Container{ID: name + "-id", Name: name, Kind: kind, SandboxID: "sb", State: state, StartedAt: t0}
	if state == runtime.StateExited {
		c.Exit = &runtime.Exit{Code: code, StartedAt: t0, FinishedAt: t0.Add(time.Second)}
	}
	return c
}

func TestComputePhases(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pod     *v1.Pod
		ctrs    []*runtime.Container
		waiting map[string]Waiting
		phase   v1.PodPhase
		ready   bool
	}{
		{"nothing yet", testPod(v1.RestartPolicyAlways), nil, nil, v1.PodPending, false},
		{"running", testPod(v1.RestartPolicyAlways), []*runtime.Container{ctr("app", runtime.KindApp, runtime.StateRunning, 0)}, nil, v1.PodRunning, true},
		{"init running", testPod(v1.RestartPolicyAlways, "i1"), []*runtime.Container{ctr("i1", runtime.KindInit, runtime.StateRunning, 0)}, nil, v1.PodPending, false},
		{"init failed, Never", testPod(v1.RestartPolicyNever, "i1"), []*runtime.Container{ctr("i1", runtime.KindInit, runtime.StateExited, 1)}, nil, v1.PodFailed, false},
		{"succeeded", testPod(v1.RestartPolicyNever), []*runtime.Container{ctr("app", runtime.KindApp, runtime.StateExited, 0)}, nil, v1.PodSucceeded, false},
		{"failed", testPod(v1.RestartPolicyNever), []*runtime.Container{ctr("app", runtime.KindApp, runtime.StateExited, 2)}, nil, v1.PodFailed, false},
		{"crash looping", testPod(v1.RestartPolicyAlways), []*runtime.Container{ctr("app", runtime.KindApp, runtime.StateExited, 2)},
			map[string]Waiting{"app": {Reason: "CrashLoopBackOff", Message: "back-off 10s"}}, v1.PodRunning, false},
	} {
		rp := &runtime.Pod{UID: "u1", Sandboxes: []*runtime.Sandbox{sandbox()}, Containers: tc.ctrs}
		st := Compute(Input{Pod: tc.pod, Runtime: rp, Waiting: tc.waiting, HostIP: "192.0.2.9", Now: t0})
		if st.Phase != tc.phase {
			t.Errorf("%s: phase %s, want %s", tc.name, st.Phase, tc.phase)
		}
		ready := false
		for _, c := range st.Conditions {
			if c.Type == v1.PodReady {
				ready = c.Status == v1.ConditionTrue
			}
		}
		if ready != tc.ready {
			t.Errorf("%s: ready %v, want %v", tc.name, ready, tc.ready)
		}
		if st.PodIP != "10.0.0.5" || st.HostIP != "192.0.2.9" {
			t.Errorf("%s: IPs %s %s", tc.name, st.PodIP, st.HostIP)
		}
	}
}

func TestCrashLoopStatusShowsWaitingAndLastState(t *testing.T) {
	c := ctr("app", runtime.KindApp, runtime.StateExited, 3)
	c.Restart = 4
	rp := &runtime.Pod{Sandboxes: []*runtime.Sandbox{sandbox()}, Containers: []*runtime.Container{c}}
	st := Compute(Input{Pod: testPod(v1.RestartPolicyAlways), Runtime: rp, Now: t0,
		Waiting: map[string]Waiting{"app": {Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container=app"}}})
	cs := st.ContainerStatuses[0]
	if cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" || cs.RestartCount != 4 {
		t.Fatalf("state %+v restarts %d", cs.State, cs.RestartCount)
	}
	if lt := cs.LastTerminationState.Terminated; lt == nil || lt.ExitCode != 3 || lt.Reason != "Error" {
		t.Fatalf("last state %+v", cs.LastTerminationState)
	}
}

func TestTerminationMessages(t *testing.T) {
	c := ctr("app", runtime.KindApp, runtime.StateExited, 3)
	c.Exit.Message = "bye"
	c.Last = &runtime.Exit{Code: 1, Message: "earlier"}
	rp := &runtime.Pod{Sandboxes: []*runtime.Sandbox{sandbox()}, Containers: []*runtime.Container{c}}
	cs := Compute(Input{Pod: testPod(v1.RestartPolicyNever), Runtime: rp, Now: t0}).ContainerStatuses[0]
	if term := cs.State.Terminated; term == nil || term.Message != "bye" || term.ExitCode != 3 {
		t.Errorf("terminated %+v; want exit 3, message bye", cs.State.Terminated)
	}
	if last := cs.LastTerminationState.Terminated; last == nil || last.Message != "earlier" {
		t.Errorf("last state %+v; want message earlier", cs.LastTerminationState.Terminated)
	}
	// In back-off the exit moves to the last state with its message.
	cs = Compute(Input{Pod: testPod(v1.RestartPolicyAlways), Runtime: rp, Now: t0,
		Waiting: map[string]Waiting{"app": {Reason: "CrashLoopBackOff"}}}).ContainerStatuses[0]
	if last := cs.LastTerminationState.Terminated; last == nil || last.Message != "bye" {
		t.Errorf("back-off last state %+v; want message bye", cs.LastTerminationState.Terminated)
	}
}

type sinkRecorder struct{ n int }

func (s *sinkRecorder) PodStatusChanged(*v1.Pod, v1.PodStatus) { s.n++ }

func TestManagerPassesOnlyChanges(t *testing.T) {
	sink := &sinkRecorder{}
	m := NewManager(sink)
	pod := testPod(v1.RestartPolicyAlways)
	rp := &runtime.Pod{Sandboxes: []*runtime.Sandbox{sandbox()}, Containers: []*runtime.Container{ctr("app", runtime.KindApp, runtime.StateRunning, 0)}}
	m.Set(pod, Compute(Input{Pod: pod, Runtime: rp, Now: t0}))
	// Same state later: transition times are kept, so nothing changed.
	m.Set(pod, Compute(Input{Pod: pod, Runtime: rp, Now: t0.Add(time.Minute)}))
	if sink.n != 1 {
		t.Fatalf("sink called %d times, want 1", sink.n)
	}
	rp.Containers[0] = ctr("app", runtime.KindApp, runtime.StateExited, 1)
	m.Set(pod, Compute(Input{Pod: pod, Runtime: rp, Now: t0.Add(2 * time.Minute)}))
	if sink.n != 2 {
		t.Fatalf("sink called %d times after a change, want 2", sink.n)
	}
}
