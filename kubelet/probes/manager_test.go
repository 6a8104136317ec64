package probes

import (
	"context"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
)

// scriptedRunner answers probes from a switch the test flips.
type scriptedRunner struct {
	mu      sync.Mutex
	healthy bool
	runs    int
}

func (r *scriptedRunner) Run(ctx context.Context, t Target, p *v1.Probe) (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs++
	return r.healthy, "scripted"
}

func (r *scriptedRunner) set(h bool) { r.mu.Lock(); r.healthy = h; r.mu.Unlock() }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestManagerDrivesProbesWithClock(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	runner := &scriptedRunner{healthy: true}
	changes := make(chan types.UID, 10)
	m := &Manager{Runner: runner, Clock: clk, OnChange: func(uid types.UID) { changes <- uid }}
	c := &v1.Container{Name: "web", ReadinessProbe: probe(3, 1, 1, 1), LivenessProbe: probe(3, 1, 1, 2)}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "u1", Name: "p", Namespace: "ns"}}
	m.Sync(context.Background(), pod, "10.0.0.2", []Running{{Container: c, ID: "c1", StartedAt: t0}})
	defer m.Forget("u1")
	if ready, _, _, ok := m.State("c1"); !ok || ready {
		t.Fatalf("before the first probe: ready=%v known=%v", ready, ok)
	}
	waitFor(t, "the worker to wait on the clock", clk.HasWaiters)
	clk.Step(3 * time.Second)
	if uid := <-changes; uid != "u1" {
		t.Fatalf("change for %s", uid)
	}
	if ready, _, _, _ := m.State("c1"); !ready {
		t.Fatal("not ready after a passing readiness probe")
	}
	runner.set(false)
	waitFor(t, "the worker to wait on the clock", clk.HasWaiters)
	clk.Step(time.Second)
	<-changes // readiness failed (threshold 1)
	waitFor(t, "the worker to wait on the clock", clk.HasWaiters)
	clk.Step(time.Second)
	<-changes // liveness failed twice: restart
	if _, _, kill, _ := m.State("c1"); kill != "Liveness probe failed: scripted" {
		t.Fatalf("kill = %q", kill)
	}
	st := v1.PodStatus{
		ContainerStatuses: []v1.ContainerStatus{{Name: "web", ContainerID: "containerd://c1", Ready: true, State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}}},
		Conditions:        []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue}, {Type: v1.ContainersReady, Status: v1.ConditionTrue}},
	}
	m.Apply(&st)
	if st.ContainerStatuses[0].Ready || st.Conditions[0].Status != v1.ConditionFalse || st.Conditions[1].Reason != "ContainersNotReady" {
		t.Fatalf("Apply left the pod ready: %+v", st)
	}
	// The container is gone: its worker stops.
	m.Sync(context.Background(), pod, "10.0.0.2", nil)
	if _, _, _, ok := m.State("c1"); ok {
		t.Fatal("worker of a stopped container is still known")
	}
}

func TestManagerSeedsFromLastAPIStatus(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	m := &Manager{Runner: &scriptedRunner{}, Clock: clk}
	c := &v1.Container{Name: "web", ReadinessProbe: probe(60, 10, 1, 3)}
	started := true
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "u2"}, Status: v1.PodStatus{ContainerStatuses: []v1.ContainerStatus{
		{Name: "web", ContainerID: "containerd://c2", Ready: true, Started: &started},
	}}}
	m.Sync(context.Background(), pod, "10.0.0.3", []Running{
		{Container: c, ID: "c2", StartedAt: t0},
		{Container: &v1.Container{Name: "web", ReadinessProbe: c.ReadinessProbe}, ID: "other-run", StartedAt: t0},
	})
	defer m.Forget("u2")
	if ready, _, _, _ := m.State("c2"); !ready {
		t.Fatal("a container Ready in the API status turned NotReady after a kubelet restart")
	}
	if ready, _, _, _ := m.State("other-run"); ready {
		t.Fatal("a different container run inherited readiness")
	}
}

func TestSeedsSurviveAManagerRestart(t *testing.T) {
	seeds := DirSeeds{Dir: t.TempDir()}
	clk := clocktesting.NewFakeClock(t0)
	changes := make(chan types.UID, 10)
	c := &v1.Container{Name: "web", ReadinessProbe: probe(0, 10, 1, 1)}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "u3"}}
	running := []Running{{Container: c, ID: "c3", StartedAt: t0}}
	first := &Manager{Runner: &scriptedRunner{healthy: true}, Clock: clk, Seeds: seeds, OnChange: func(uid types.UID) { changes <- uid }}
	first.Sync(context.Background(), pod, "10.0.0.4", running)
	<-changes
	if ready, _, _, _ := first.State("c3"); !ready {
		t.Fatal("not ready after a passing probe")
	}
	// The kubelet restarts (the old manager's workers die with the process).
	second := &Manager{Runner: &scriptedRunner{healthy: true}, Clock: clk, Seeds: seeds}
	second.Sync(context.Background(), pod, "10.0.0.4", running)
	if ready, _, _, _ := second.State("c3"); !ready {
		t.Fatal("a ready container turned NotReady across a kubelet restart")
	}
	// The container is gone: its seed goes too.
	second.Forget("u3")
	first.Forget("u3")
	if _, ok := seeds.Load("c3"); ok {
		t.Fatal("seed of a removed container left behind")
	}
}
