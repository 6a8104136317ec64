// Package probes runs liveness, readiness and startup probes. The logic is a
// pure per-container state machine (Set) driven by the caller's clock; the
// Manager runs one goroutine per probed container that asks the Set what is
// due, runs the probers (exec, httpGet, tcpSocket, grpc) and reports changes:
// readiness and started feed pod status, a failed liveness or startup probe
// asks the pod's syncer to restart the container.
package probes

import (
	"time"

	v1 "k8s.io/api/core/v1"
)

// Kind of probe.
type Kind string

const (
	Liveness  Kind = "Liveness"
	Readiness Kind = "Readiness"
	Startup   Kind = "Startup"
)

// Result of a probe after thresholds.
type Result int

const (
	Unknown Result = iota
	Success
	Failure
)

// machine is one probe's threshold logic.
type machine struct {
	probe               *v1.Probe
	result              Result
	successes, failures int32
	lastRun             time.Time
}

func (m *machine) period() time.Duration {
	return seconds(m.probe.PeriodSeconds, 10)
}

// next is when this probe is due: initialDelaySeconds after the container
// started, then every periodSeconds.
func (m *machine) next(started time.Time) time.Time {
	if m.lastRun.IsZero() {
		return started.Add(time.Duration(m.probe.InitialDelaySeconds) * time.Second)
	}
	return m.lastRun.Add(m.period())
}

// observe folds one outcome in; it returns true when the result changed.
func (m *machine) observe(now time.Time, ok bool) bool {
	m.lastRun = now
	old := m.result
	if ok {
		m.successes, m.failures = m.successes+1, 0
		if m.successes >= atLeastOne(m.probe.SuccessThreshold) {
			m.result = Success
		}
	} else {
		m.failures, m.successes = m.failures+1, 0
		if m.failures >= threshold(m.probe.FailureThreshold, 3) {
			m.result = Failure
		}
	}
	return m.result != old
}

func seconds(v int32, def int32) time.Duration {
	if v <= 0 {
		v = def
	}
	return time.Duration(v) * time.Second
}

func atLeastOne(v int32) int32 { return threshold(v, 1) }

func threshold(v, def int32) int32 {
	if v <= 0 {
		return def
	}
	return v
}

// Set is the probe state of one container run (a restarted container gets a
// new Set). It is pure: every method takes the time from the caller.
type Set struct {
	started time.Time
	probes  map[Kind]*machine
	kill    string // non-empty once liveness or startup failed: why to restart
}

// Seed is what is known about a container from before this kubelet process
// (the last status written to the API): it keeps a Ready pod Ready across a
// kubelet restart until the first probe result.
type Seed struct {
	Ready, Started bool
}

// NewSet builds the state for a container that started at started.
func NewSet(c *v1.Container, started time.Time, seed Seed) *Set {
	s := &Set{started: started, probes: map[Kind]*machine{}}
	add := func(k Kind, p *v1.Probe, initial Result) {
		if p != nil {
			s.probes[k] = &machine{probe: p, result: initial}
		}
	}
	add(Startup, c.StartupProbe, pick(seed.Started, Success, Unknown))
	add(Liveness, c.LivenessProbe, Success)
	add(Readiness, c.ReadinessProbe, pick(seed.Ready, Success, Failure))
	return s
}

func pick(b bool, yes, no Result) Result {
	if b {
		return yes
	}
	return no
}

// Empty reports whether the container has no probes at all.
func (s *Set) Empty() bool { return len(s.probes) == 0 }

// Probe returns the spec of one kind (nil if the container has none).
func (s *Set) Probe(k Kind) *v1.Probe {
	if m := s.probes[k]; m != nil {
		return m.probe
	}
	return nil
}

// Started: the startup probe succeeded (or there is none).
func (s *Set) Started() bool {
	m := s.probes[Startup]
	return m == nil || m.result == Success
}

// Ready: started, and the readiness probe succeeded (or there is none).
func (s *Set) Ready() bool {
	if !s.Started() || s.kill != "" {
		return false
	}
	m := s.probes[Readiness]
	return m == nil || m.result == Success
}

// Kill returns why the container must be restarted ("" while it is healthy).
func (s *Set) Kill() string { return s.kill }

// gated: liveness and readiness wait for the startup probe.
func (s *Set) gated(k Kind) bool { return k != Startup && !s.Started() }

// Due lists the probes to run at now. A startup probe stops once it
// succeeded; nothing runs once a restart was asked for.
func (s *Set) Due(now time.Time) []Kind {
	if s.kill != "" {
		return nil
	}
	var due []Kind
	for _, k := range []Kind{Startup, Liveness, Readiness} {
		m := s.probes[k]
		if m == nil || s.gated(k) || k == Startup && m.result == Success {
			continue
		}
		if !now.Before(m.next(s.started)) {
			due = append(due, k)
		}
	}
	return due
}

// Next returns the earliest time a probe is due (zero when none will be).
func (s *Set) Next() time.Time {
	var next time.Time
	if s.kill != "" {
		return next
	}
	for k, m := range s.probes {
		if s.gated(k) || k == Startup && m.result == Success {
			continue
		}
		if t := m.next(s.started); next.IsZero() || t.Before(next) {
			next = t
		}
	}
	return next
}

// Observe records one probe outcome and returns true when Ready, Started or
// Kill changed.
func (s *Set) Observe(k Kind, now time.Time, ok bool, msg string) bool {
	m := s.probes[k]
	if m == nil {
		return false
	}
	ready, started, kill := s.Ready(), s.Started(), s.kill
	m.observe(now, ok)
	if m.result == Failure && (k == Liveness || k == Startup) && s.kill == "" {
		s.kill = string(k) + " probe failed: " + msg
	}
	return ready != s.Ready() || started != s.Started() || kill != s.kill
}
