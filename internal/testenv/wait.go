package testenv

import (
	"errors"
	"testing"
	"time"
)

// Polling starts fast (fake clients answer in microseconds) and backs off
// to maxPollInterval so a long wait does not load the server it polls.
const (
	minPollInterval = 10 * time.Millisecond
	maxPollInterval = 100 * time.Millisecond
)

// WaitFor polls cond until it returns nil and fails t once timeout has
// passed, naming what it waited for and cond's last error.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := minPollInterval
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s (last: %v)", what, timeout, err)
		}
		time.Sleep(interval)
		interval = min(2*interval, maxPollInterval)
	}
}

// WaitUntil is WaitFor for a condition with nothing to report.
func WaitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	WaitFor(t, timeout, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

var errNotYet = errors.New("condition false")
