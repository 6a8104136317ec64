// Package startslots bounds how many pods do expensive start work (sandbox:
// netns, CNI, pause container; container create and start) at once, and
// serves the waiting ones oldest pod first. Without it a batch of pods
// progresses all at once on a small machine and every pod finishes near the
// end of the batch; with it pods finish roughly in the order they came,
// at the same overall throughput. Image pulls are not covered: a slow pull
// must not hold a slot.
package startslots

import (
	"container/heap"
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// Slots hands out a fixed number of start slots by pod age (the order in
// which pods were first seen). The zero value is not usable: see New.
type Slots struct {
	mu      sync.Mutex
	free    int
	next    uint64               // age of the next new pod
	age     map[types.UID]uint64 // pods seen and not forgotten
	waiting waiters
}

// New returns n slots (n < 1 is taken as 1).
func New(n int) *Slots {
	return &Slots{free: max(n, 1), age: map[types.UID]uint64{}}
}

type waiter struct {
	age   uint64
	ready chan struct{} // closed when the slot is handed over
	index int
}

type waiters []*waiter

func (w waiters) Len() int           { return len(w) }
func (w waiters) Less(i, j int) bool { return w[i].age < w[j].age }
func (w waiters) Swap(i, j int)      { w[i], w[j] = w[j], w[i]; w[i].index = i; w[j].index = j }
func (w *waiters) Push(x any)        { x.(*waiter).index = len(*w); *w = append(*w, x.(*waiter)) }
func (w *waiters) Pop() any {
	old := *w
	x := old[len(old)-1]
	*w = old[:len(old)-1]
	return x
}

// Acquire waits for a slot for the pod: among waiters, the pod first seen
// earliest goes first. It returns ctx's error if ctx ends first.
func (s *Slots) Acquire(ctx context.Context, uid types.UID) error {
	s.mu.Lock()
	a, ok := s.age[uid]
	if !ok {
		a = s.next
		s.next++
		s.age[uid] = a
	}
	if s.free > 0 && len(s.waiting) == 0 {
		s.free--
		s.mu.Unlock()
		return nil
	}
	w := &waiter{age: a, ready: make(chan struct{})}
	heap.Push(&s.waiting, w)
	s.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		select {
		case <-w.ready: // handed over meanwhile: pass it on
			s.releaseLocked()
		default:
			heap.Remove(&s.waiting, w.index)
		}
		return ctx.Err()
	}
}

// Release returns a slot taken by Acquire.
func (s *Slots) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked()
}

func (s *Slots) releaseLocked() {
	if len(s.waiting) > 0 {
		close(heap.Pop(&s.waiting).(*waiter).ready)
		return
	}
	s.free++
}

// Forget drops a removed pod's age.
func (s *Slots) Forget(uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.age, uid)
}
