// Package backoff is the CrashLoopBackOff state machine: given when a
// container started and exited, it says when it may be restarted. It is pure —
// time comes in as arguments — so tests replay scripts instead of sleeping.
//
// Like upstream: the first restart is immediate, then the delay starts at
// Initial (10 s) and doubles up to Max (5 min); a container that ran for
// ResetAfter (10 min) before exiting starts over.
package backoff

import "time"

// Policy holds the tunables; the zero value means upstream's defaults.
type Policy struct {
	Initial    time.Duration
	Max        time.Duration
	ResetAfter time.Duration
}

// Default is upstream's policy.
func Default() Policy {
	return Policy{Initial: 10 * time.Second, Max: 5 * time.Minute, ResetAfter: 10 * time.Minute}
}

func (p Policy) withDefaults() Policy {
	d := Default()
	if p.Initial <= 0 {
		p.Initial = d.Initial
	}
	if p.Max <= 0 {
		p.Max = d.Max
	}
	if p.ResetAfter <= 0 {
		p.ResetAfter = d.ResetAfter
	}
	return p
}

// State is one container's back-off; the zero value is "never crashed".
type State struct {
	Delay     time.Duration // applied to the current exit
	RestartAt time.Time     // earliest restart for the current exit
}

// Exited folds one exit into the state and returns the new state: the
// container may restart at RestartAt (finishedAt + Delay).
func (p Policy) Exited(s State, startedAt, finishedAt time.Time) State {
	p = p.withDefaults()
	var delay time.Duration
	switch {
	case finishedAt.Sub(startedAt) >= p.ResetAfter:
		delay = 0 // it ran long enough: start over
	case s.RestartAt.IsZero():
		delay = 0 // first crash: restart at once
	case s.Delay == 0:
		delay = p.Initial
	default:
		delay = s.Delay * 2
		if delay > p.Max {
			delay = p.Max
		}
	}
	return State{Delay: delay, RestartAt: finishedAt.Add(delay)}
}

// Waiting reports whether a restart at now must still wait, and how long.
func (s State) Waiting(now time.Time) (bool, time.Duration) {
	if now.Before(s.RestartAt) {
		return true, s.RestartAt.Sub(now)
	}
	return false, 0
}
