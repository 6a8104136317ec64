package lifecycle

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/hoist-project/hoist/kubelet/probes"
)

// fakeHandlers records handler runs; block makes a run wait for ctx.
type fakeHandlers struct {
	mu    sync.Mutex
	runs  []v1.ProbeHandler
	ids   []string
	err   error
	block bool
}

func (f *fakeHandlers) RunHandler(ctx context.Context, t probes.Target, h v1.ProbeHandler) error {
	f.mu.Lock()
	f.runs = append(f.runs, h)
	f.ids = append(f.ids, t.ContainerID)
	f.mu.Unlock()
	if f.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return f.err
}

func target(lc *v1.Lifecycle) probes.Target {
	return probes.Target{PodIP: "10.1.0.5", ContainerID: "c1", Container: &v1.Container{Name: "app", Lifecycle: lc}}
}

func execHook(cmd ...string) *v1.LifecycleHandler {
	return &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: cmd}}
}

func TestPostStartRunsExecAndHTTP(t *testing.T) {
	f := &fakeHandlers{}
	r := &Runner{Handlers: f}
	if err := r.PostStart(context.Background(), target(&v1.Lifecycle{PostStart: execHook("touch", "/x")})); err != nil {
		t.Fatal(err)
	}
	hg := &v1.HTTPGetAction{Path: "/hook", Port: intstr.FromInt32(8080)}
	if err := r.PostStart(context.Background(), target(&v1.Lifecycle{PostStart: &v1.LifecycleHandler{HTTPGet: hg}})); err != nil {
		t.Fatal(err)
	}
	if len(f.runs) != 2 || f.runs[0].Exec == nil || f.runs[0].Exec.Command[1] != "/x" || f.runs[1].HTTPGet != hg || f.ids[0] != "c1" {
		t.Fatalf("handler runs %+v (ids %v)", f.runs, f.ids)
	}
	// No hook: nothing runs.
	if err := r.PostStart(context.Background(), target(nil)); err != nil || len(f.runs) != 2 {
		t.Fatalf("no hook: err %v, %d runs", err, len(f.runs))
	}
}

func TestPostStartFailureNamesContainer(t *testing.T) {
	r := &Runner{Handlers: &fakeHandlers{err: errors.New(`command ["false"] exited with 1`)}}
	err := r.PostStart(context.Background(), target(&v1.Lifecycle{PostStart: execHook("false")}))
	if err == nil || !strings.Contains(err.Error(), "postStart hook of container app") || !strings.Contains(err.Error(), "exited with 1") {
		t.Fatalf("err = %v", err)
	}
	err = r.PostStart(context.Background(), target(&v1.Lifecycle{PostStart: &v1.LifecycleHandler{TCPSocket: &v1.TCPSocketAction{}}}))
	if err == nil || !strings.Contains(err.Error(), "tcpSocket") {
		t.Fatalf("tcpSocket hook: err = %v", err)
	}
}

func TestPreStopTakesItsTimeFromTheGrace(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	f := &fakeHandlers{}
	r := &Runner{Handlers: &slowHandlers{fakeHandlers: f, advance: func() { now = now.Add(3 * time.Second) }}, Now: clock}
	left, err := r.PreStop(context.Background(), target(&v1.Lifecycle{PreStop: execHook("drain")}), 10*time.Second)
	if err != nil || left != 7*time.Second {
		t.Fatalf("left %v, err %v; want 7s, nil", left, err)
	}
	// A hook using more than the grace leaves the minimum.
	left, _ = r.PreStop(context.Background(), target(&v1.Lifecycle{PreStop: execHook("drain")}), 2500*time.Millisecond)
	if left != MinStopGrace {
		t.Fatalf("left %v, want %v", left, MinStopGrace)
	}
	// No hook or no grace: the grace is untouched and nothing runs.
	n := len(f.runs)
	if left, _ := r.PreStop(context.Background(), target(nil), 5*time.Second); left != 5*time.Second {
		t.Fatalf("no hook: left %v", left)
	}
	if left, _ := r.PreStop(context.Background(), target(&v1.Lifecycle{PreStop: execHook("drain")}), 0); left != 0 || len(f.runs) != n {
		t.Fatalf("grace 0: left %v, runs %d (want 0, %d)", left, len(f.runs), n)
	}
}

// slowHandlers advances the fake clock while a handler "runs".
type slowHandlers struct {
	*fakeHandlers
	advance func()
}

func (s *slowHandlers) RunHandler(ctx context.Context, t probes.Target, h v1.ProbeHandler) error {
	s.advance()
	return s.fakeHandlers.RunHandler(ctx, t, h)
}

func TestPreStopIsCutAtTheGracePeriod(t *testing.T) {
	r := &Runner{Handlers: &fakeHandlers{block: true}}
	start := time.Now()
	left, err := r.PreStop(context.Background(), target(&v1.Lifecycle{PreStop: execHook("sleep", "1000")}), 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "grace period") {
		t.Fatalf("err = %v, want a grace period error", err)
	}
	if left != MinStopGrace {
		t.Fatalf("left %v, want %v", left, MinStopGrace)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("hook ran %v past a 200ms grace", d)
	}
}

func TestSleepHook(t *testing.T) {
	r := &Runner{Handlers: &fakeHandlers{}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := r.PostStart(ctx, target(&v1.Lifecycle{PostStart: &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 100}}}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("sleep hook with ended ctx: err = %v", err)
	}
	if err := r.PostStart(context.Background(), target(&v1.Lifecycle{PostStart: &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 0}}})); err != nil {
		t.Fatal(err)
	}
}
