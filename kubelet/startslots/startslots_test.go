package startslots

import (
	"context"
	"errors"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func (s *Slots) waiters() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiting)
}

// acquireAsync starts an Acquire and returns a channel that gets its result.
func acquireAsync(ctx context.Context, t *testing.T, s *Slots, uid types.UID, queued int) chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Acquire(ctx, uid) }()
	deadline := time.Now().Add(5 * time.Second)
	for s.waiters() != queued { // wait until it is queued
		if time.Now().After(deadline) {
			t.Fatalf("%s not queued (%d waiters)", uid, s.waiters())
		}
		time.Sleep(time.Millisecond)
	}
	return done
}

func mustGet(t *testing.T, name string, c chan error) {
	t.Helper()
	select {
	case err := <-c:
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s got no slot", name)
	}
}

func mustWait(t *testing.T, name string, c chan error) {
	t.Helper()
	select {
	case err := <-c:
		t.Fatalf("%s got a slot out of turn (%v)", name, err)
	default:
	}
}

func TestOldestPodFirst(t *testing.T) {
	ctx := context.Background()
	s := New(1)
	if err := s.Acquire(ctx, "a"); err != nil { // a is the oldest pod
		t.Fatal(err)
	}
	s.Release()
	if err := s.Acquire(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	c := acquireAsync(ctx, t, s, "c", 1)
	a := acquireAsync(ctx, t, s, "a", 2) // queued after c, but older
	mustWait(t, "c", c)
	s.Release() // b done
	mustGet(t, "a", a)
	mustWait(t, "c", c)
	s.Release() // a done
	mustGet(t, "c", c)
	s.Release()
	if s.free != 1 || s.waiters() != 0 {
		t.Fatalf("free %d, waiters %d after all released", s.free, s.waiters())
	}
}

func TestSlotsRunInParallelUpToN(t *testing.T) {
	ctx := context.Background()
	s := New(2)
	for _, uid := range []types.UID{"a", "b"} {
		if err := s.Acquire(ctx, uid); err != nil {
			t.Fatal(err)
		}
	}
	c := acquireAsync(ctx, t, s, "c", 1)
	mustWait(t, "c", c)
	s.Release()
	mustGet(t, "c", c)
}

func TestCancelledWaiterLeavesTheQueue(t *testing.T) {
	s := New(1)
	if err := s.Acquire(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := acquireAsync(ctx, t, s, "b", 1)
	cancel()
	if err := <-b; !errors.Is(err, context.Canceled) {
		t.Fatalf("b: %v, want context.Canceled", err)
	}
	if s.waiters() != 0 {
		t.Fatalf("%d waiters after the cancel", s.waiters())
	}
	s.Release()
	if s.free != 1 {
		t.Fatalf("free %d, want 1", s.free)
	}
}

func TestForgottenPodIsNew(t *testing.T) {
	ctx := context.Background()
	s := New(1)
	for _, uid := range []types.UID{"a", "b"} {
		if err := s.Acquire(ctx, uid); err != nil {
			t.Fatal(err)
		}
		s.Release()
	}
	s.Forget("a")
	if err := s.Acquire(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	a := acquireAsync(ctx, t, s, "a", 1) // seen again: now younger than b
	b := acquireAsync(ctx, t, s, "b", 2)
	s.Release()
	mustGet(t, "b", b)
	mustWait(t, "a", a)
	s.Release()
	mustGet(t, "a", a)
}
