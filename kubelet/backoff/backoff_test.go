package backoff

import (
	"testing"
	"time"
)

// step is one line of a script: the container ran from start to exit
// (seconds after t0); want is the delay before it may restart.
type step struct {
	start, exit float64
	want        time.Duration
}

func replay(t *testing.T, p Policy, script []step) State {
	t.Helper()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	var s State
	for i, st := range script {
		if i > 0 {
			// The script must respect the previous decision: the kubelet
			// never restarts a container early.
			if wait, _ := s.Waiting(at(st.start)); wait {
				t.Fatalf("step %d: script restarts at %vs, before RestartAt %v", i, st.start, s.RestartAt.Sub(t0))
			}
		}
		s = p.Exited(s, at(st.start), at(st.exit))
		if s.Delay != st.want {
			t.Fatalf("step %d: delay %v, want %v", i, s.Delay, st.want)
		}
		if wait, left := s.Waiting(at(st.exit)); (st.want > 0) != wait || left != st.want {
			t.Fatalf("step %d: Waiting at exit = %v %v, want %v", i, wait, left, st.want)
		}
	}
	return s
}

func TestCrashLoopDoublesToMax(t *testing.T) {
	replay(t, Policy{}, []step{
		{0, 1, 0},
		{1, 2, 10 * time.Second},
		{12, 13, 20 * time.Second},
		{33, 34, 40 * time.Second},
		{74, 75, 80 * time.Second},
		{155, 156, 160 * time.Second},
		{316, 317, 300 * time.Second},
		{617, 618, 300 * time.Second},
	})
}

func TestCrashLoopResetsAfterLongRun(t *testing.T) {
	replay(t, Policy{}, []step{
		{0, 1, 0},
		{1, 2, 10 * time.Second},
		{12, 13, 20 * time.Second},
		{33, 33 + 600, 0},            // ran 10 min: restart at once
		{633, 634, 10 * time.Second}, // and the ladder starts again
	})
}

func TestCrashLoopConfigurable(t *testing.T) {
	replay(t, Policy{Initial: time.Second, Max: 3 * time.Second, ResetAfter: 5 * time.Second}, []step{
		{0, 1, 0},
		{1, 2, time.Second},
		{3, 4, 2 * time.Second},
		{6, 7, 3 * time.Second},
		{10, 16, 0},
	})
}

func TestWaitingAfterRestartAt(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := State{Delay: 10 * time.Second, RestartAt: t0.Add(10 * time.Second)}
	if w, _ := s.Waiting(t0.Add(10 * time.Second)); w {
		t.Fatal("must not wait once RestartAt is reached")
	}
	if w, left := s.Waiting(t0.Add(4 * time.Second)); !w || left != 6*time.Second {
		t.Fatalf("Waiting = %v %v, want true 6s", w, left)
	}
}
