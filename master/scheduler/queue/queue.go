// Package queue is the scheduler's pending-pod queue: an active FIFO of pods
// to try now and a set of unschedulable pods that are only tried again when
// the cluster changes (MoveAllToActive) or after a long timeout — never in
// a busy loop.
package queue

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Key identifies a pod in the queue.
func Key(pod *corev1.Pod) string { return pod.Namespace + "/" + pod.Name }

type entry struct {
	pod   *corev1.Pod
	since time.Time
}

// Queue is safe for concurrent use.
type Queue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	now    func() time.Time
	order  []string
	active map[string]*corev1.Pod
	unsch  map[string]entry
	// moveCycle counts MoveAllToActive calls, so a pod whose attempt raced
	// with a cluster change goes back to active instead of waiting.
	moveCycle int64
	closed    bool
}

// New returns an empty queue; now is the clock (time.Now in production).
func New(now func() time.Time) *Queue {
	q := &Queue{now: now, active: map[string]*corev1.Pod{}, unsch: map[string]entry{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Add queues a new or changed pending pod for an attempt now.
func (q *Queue) Add(pod *corev1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addActiveLocked(pod)
}

func (q *Queue) addActiveLocked(pod *corev1.Pod) {
	k := Key(pod)
	delete(q.unsch, k)
	if _, ok := q.active[k]; !ok {
		q.order = append(q.order, k)
	}
	q.active[k] = pod
	q.cond.Signal()
}

// Update replaces the stored object of a queued pod without moving it
// (status-only changes must not retry an unschedulable pod). It reports
// whether the pod was queued.
func (q *Queue) Update(pod *corev1.Pod) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := Key(pod)
	if _, ok := q.active[k]; ok {
		q.active[k] = pod
		return true
	}
	if e, ok := q.unsch[k]; ok {
		e.pod = pod
		q.unsch[k] = e
		return true
	}
	return false
}

// Pop blocks until a pod is active or the queue is closed. It returns the
// pod and the move cycle to hand back to AddUnschedulable.
func (q *Queue) Pop() (*corev1.Pod, int64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.order) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil, 0, false
	}
	k := q.order[0]
	q.order[0] = ""
	q.order = q.order[1:]
	pod := q.active[k]
	delete(q.active, k)
	return pod, q.moveCycle, true
}

// AddUnschedulable parks a pod that fit nowhere. If the cluster changed
// since the attempt started (cycle is older than the move cycle), the pod
// goes straight back to active. A pod re-added meanwhile stays active.
func (q *Queue) AddUnschedulable(pod *corev1.Pod, cycle int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := Key(pod)
	if _, ok := q.active[k]; ok {
		return
	}
	if cycle < q.moveCycle {
		q.addActiveLocked(pod)
		return
	}
	q.unsch[k] = entry{pod: pod, since: q.now()}
}

// MoveAllToActive retries every unschedulable pod: called on cluster events
// that may make a pod fit (node added or changed, pod deleted).
func (q *Queue) MoveAllToActive() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.moveCycle++
	for _, e := range q.unsch {
		q.addActiveLocked(e.pod)
	}
}

// FlushStale retries unschedulable pods parked for longer than maxAge, a
// safety net for changes no event reports.
func (q *Queue) FlushStale(maxAge time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for _, e := range q.unsch {
		if now.Sub(e.since) >= maxAge {
			q.addActiveLocked(e.pod)
		}
	}
}

// Delete forgets a pod (deleted, or bound by someone else).
func (q *Queue) Delete(pod *corev1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := Key(pod)
	delete(q.unsch, k)
	if _, ok := q.active[k]; ok {
		delete(q.active, k)
		for i, o := range q.order {
			if o == k {
				q.order = append(q.order[:i], q.order[i+1:]...)
				break
			}
		}
	}
}

// Lens returns the number of active and unschedulable pods.
func (q *Queue) Lens() (active, unschedulable int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order), len(q.unsch)
}

// Close wakes Pop callers, which then return false.
func (q *Queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Broadcast()
}
