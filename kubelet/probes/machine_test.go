package probes

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func probe(delay, period, success, failure int32) *v1.Probe {
	return &v1.Probe{InitialDelaySeconds: delay, PeriodSeconds: period, SuccessThreshold: success, FailureThreshold: failure,
		ProbeHandler: v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{}}}
}

func TestReadinessThresholdsAndInitialDelay(t *testing.T) {
	s := NewSet(&v1.Container{ReadinessProbe: probe(5, 2, 2, 3)}, t0, Seed{})
	if s.Ready() || !s.Started() {
		t.Fatalf("fresh container: ready=%v started=%v, want false/true", s.Ready(), s.Started())
	}
	if due := s.Due(at(4)); len(due) != 0 {
		t.Fatalf("due before initial delay: %v", due)
	}
	if got := s.Next(); !got.Equal(at(5)) {
		t.Fatalf("next = %v, want t+5s", got)
	}
	if due := s.Due(at(5)); len(due) != 1 || due[0] != Readiness {
		t.Fatalf("due at t+5s = %v", due)
	}
	if s.Observe(Readiness, at(5), true, "") || s.Ready() {
		t.Fatal("one success of successThreshold=2 made the container ready")
	}
	if got := s.Next(); !got.Equal(at(7)) {
		t.Fatalf("next = %v, want t+7s (period 2s)", got)
	}
	if !s.Observe(Readiness, at(7), true, "") || !s.Ready() {
		t.Fatal("two successes did not make the container ready")
	}
	for i, sec := range []int{9, 11} {
		if s.Observe(Readiness, at(sec), false, "boom") || !s.Ready() {
			t.Fatalf("failure %d of failureThreshold=3 changed readiness", i+1)
		}
	}
	if !s.Observe(Readiness, at(13), false, "boom") || s.Ready() {
		t.Fatal("third failure did not make the container unready")
	}
	if s.Kill() != "" {
		t.Fatalf("readiness failure asked for a restart: %q", s.Kill())
	}
}

func TestLivenessFailureAsksForRestart(t *testing.T) {
	s := NewSet(&v1.Container{LivenessProbe: probe(0, 1, 1, 2)}, t0, Seed{})
	if !s.Ready() {
		t.Fatal("container without readiness probe is not ready")
	}
	s.Observe(Liveness, at(0), false, "connection refused")
	if s.Kill() != "" {
		t.Fatal("restart after one failure of failureThreshold=2")
	}
	if !s.Observe(Liveness, at(1), false, "connection refused") {
		t.Fatal("second failure reported no change")
	}
	if want := "Liveness probe failed: connection refused"; s.Kill() != want {
		t.Fatalf("kill = %q, want %q", s.Kill(), want)
	}
	if s.Ready() || len(s.Due(at(10))) != 0 || !s.Next().IsZero() {
		t.Fatal("a container to be restarted must be unready and probed no more")
	}
}

func TestStartupGatesLivenessAndReadiness(t *testing.T) {
	c := &v1.Container{StartupProbe: probe(0, 1, 1, 5), LivenessProbe: probe(0, 1, 1, 1), ReadinessProbe: probe(0, 1, 1, 1)}
	s := NewSet(c, t0, Seed{})
	if s.Started() || s.Ready() {
		t.Fatal("started before the startup probe succeeded")
	}
	for sec := 0; sec < 3; sec++ {
		due := s.Due(at(sec))
		if len(due) != 1 || due[0] != Startup {
			t.Fatalf("t+%ds: due %v, want only the startup probe", sec, due)
		}
		s.Observe(Startup, at(sec), false, "not yet")
	}
	if !s.Observe(Startup, at(3), true, "") || !s.Started() || s.Ready() {
		t.Fatalf("after startup success: started=%v ready=%v, want true/false", s.Started(), s.Ready())
	}
	due := s.Due(at(3))
	if len(due) != 2 || due[0] != Liveness || due[1] != Readiness {
		t.Fatalf("after startup: due %v, want liveness and readiness", due)
	}
	if !s.Observe(Readiness, at(3), true, "") || !s.Ready() {
		t.Fatal("readiness success did not make the container ready")
	}
	if len(s.Due(at(100))) != 2 {
		t.Fatal("the startup probe ran again after it succeeded")
	}
}

func TestStartupFailureAsksForRestart(t *testing.T) {
	s := NewSet(&v1.Container{StartupProbe: probe(0, 1, 1, 1)}, t0, Seed{})
	s.Observe(Startup, at(0), false, "exit 1")
	if s.Kill() != "Startup probe failed: exit 1" {
		t.Fatalf("kill = %q", s.Kill())
	}
}

func TestSeedKeepsReadyUntilFirstResult(t *testing.T) {
	c := &v1.Container{StartupProbe: probe(0, 1, 1, 1), ReadinessProbe: probe(30, 10, 1, 1)}
	s := NewSet(c, t0, Seed{Ready: true, Started: true})
	if !s.Ready() || !s.Started() {
		t.Fatal("seeded container is not ready after a kubelet restart")
	}
	if s.Observe(Readiness, at(30), true, "") || !s.Ready() {
		t.Fatal("a passing first probe changed a seeded-ready container")
	}
	if !s.Observe(Readiness, at(40), false, "down") || s.Ready() {
		t.Fatal("a failing probe did not flip a seeded container")
	}
}
