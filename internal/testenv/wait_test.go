package testenv

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// fatalRecorder stands in for the test's T so the failure path can be observed.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f) // stops WaitFor as t.Fatalf's Goexit would
}

func TestWaitForReturnsOnceConditionHolds(t *testing.T) {
	calls := 0
	WaitFor(t, 5*time.Second, "third call", func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 3 {
		t.Fatalf("cond called %d times, want 3", calls)
	}
}

func TestWaitForFailsWithWhatAndLastError(t *testing.T) {
	rec := &fatalRecorder{TB: t}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { _ = recover() }()
		WaitUntil(rec, 30*time.Millisecond, "the impossible", func() bool { return false })
	}()
	wg.Wait()
	if !strings.Contains(rec.msg, "the impossible: not reached within 30ms") || !strings.Contains(rec.msg, "condition false") {
		t.Fatalf("failure message %q", rec.msg)
	}
}
