package ctrlutil

import (
	"context"
	"sync"
	"time"
)

// ExpectationsTimeout is how long unobserved creations/deletions block a
// controller before it trusts its cache again (upstream: 5 minutes).
const ExpectationsTimeout = 5 * time.Minute

// Expectations remembers how many pod creations and deletions a controller
// issued for a key and has not yet seen in its informer, so a sync against
// a stale cache does not create or delete the same pods twice.
type Expectations struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*expectation
}

type expectation struct {
	add, del int
	at       time.Time
}

// NewExpectations returns an empty set; now is the clock.
func NewExpectations(now func() time.Time) *Expectations {
	return &Expectations{now: now, m: map[string]*expectation{}}
}

// Expect records add creations and del deletions about to be issued.
func (e *Expectations) Expect(key string, add, del int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[key] = &expectation{add: add, del: del, at: e.now()}
}

// Observed lowers the pending counts of key (also for failed requests).
func (e *Expectations) Observed(key string, add, del int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x := e.m[key]; x != nil {
		x.add -= add
		x.del -= del
	}
}

// Satisfied reports whether key has nothing pending (or it expired).
func (e *Expectations) Satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.m[key]
	return x == nil || (x.add <= 0 && x.del <= 0) || e.now().Sub(x.at) > ExpectationsTimeout
}

// Forget drops key (its owner was deleted).
func (e *Expectations) Forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}

// Gone is the GoneFunc of a controller whose only state about a deleted
// owner is its expectations: it forgets key.
func (e *Expectations) Gone(_ context.Context, key string) error {
	e.Forget(key)
	return nil
}
