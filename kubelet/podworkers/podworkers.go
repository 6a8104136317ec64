// Package podworkers runs one goroutine per pod so that all work on a pod is
// serialised while different pods proceed in parallel. Updates coalesce: a
// worker always acts on the latest desired state. A removed pod's worker runs
// the kill function until it succeeds, then exits — unless the same UID was
// added again meanwhile, in which case it carries on syncing.
package podworkers

import (
	"context"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// SyncFunc drives a pod toward its spec and says when to look again (0: at
// the periodic resync).
type SyncFunc func(ctx context.Context, pod *v1.Pod) (time.Duration, error)

// KillFunc stops and removes everything of a pod.
type KillFunc func(ctx context.Context, pod *v1.Pod) error

// Config of the workers.
type Config struct {
	Sync   SyncFunc
	Kill   KillFunc
	Resync time.Duration // periodic sync of every pod (default 10 s)
	// OnError hears about failed syncs and kills (logging); may be nil.
	OnError func(pod *v1.Pod, op string, err error)
}

type worker struct {
	pod     *v1.Pod // latest desired spec
	removed bool    // the pod is no longer desired
	kick    chan struct{}
}

// Workers dispatches pod updates to per-pod goroutines.
type Workers struct {
	cfg     Config
	ctx     context.Context
	mu      sync.Mutex
	workers map[types.UID]*worker
	wg      sync.WaitGroup
}

// New returns workers whose goroutines live until ctx ends.
func New(ctx context.Context, cfg Config) *Workers {
	if cfg.Resync <= 0 {
		cfg.Resync = 10 * time.Second
	}
	return &Workers{cfg: cfg, ctx: ctx, workers: map[types.UID]*worker{}}
}

// Update sets the desired spec of a pod (starting its worker if needed).
func (w *Workers) Update(pod *v1.Pod) { w.set(pod, false) }

// Remove asks for a pod to be killed and forgotten.
func (w *Workers) Remove(pod *v1.Pod) { w.set(pod, true) }

func (w *Workers) set(pod *v1.Pod, removed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wk, ok := w.workers[pod.UID]
	if !ok {
		wk = &worker{kick: make(chan struct{}, 1)}
		w.workers[pod.UID] = wk
		w.wg.Add(1)
		go w.run(pod.UID, wk)
	}
	wk.pod, wk.removed = pod, removed
	signal(wk.kick)
}

// Kick makes a pod's worker sync soon (e.g. after a container exit).
func (w *Workers) Kick(uid types.UID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if wk, ok := w.workers[uid]; ok {
		signal(wk.kick)
	}
}

// Known reports whether the pod has a worker (desired or being removed).
func (w *Workers) Known(uid types.UID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.workers[uid]
	return ok
}

// Pods returns the latest spec of every pod with a worker, removed ones
// included (the kubelet's stop-all stops them with their own specs).
func (w *Workers) Pods() []*v1.Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	pods := make([]*v1.Pod, 0, len(w.workers))
	for _, wk := range w.workers {
		pods = append(pods, wk.pod)
	}
	return pods
}

// Wait blocks until every worker has returned (after ctx ended).
func (w *Workers) Wait() { w.wg.Wait() }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (w *Workers) run(uid types.UID, wk *worker) {
	defer w.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	failures := 0
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-wk.kick:
		case <-timer.C:
		}
		w.mu.Lock()
		pod, removed := wk.pod, wk.removed
		w.mu.Unlock()

		var next time.Duration
		var err error
		if removed {
			if err = w.cfg.Kill(w.ctx, pod); err == nil {
				w.mu.Lock()
				if wk.removed { // not re-added while we were killing
					delete(w.workers, uid)
					w.mu.Unlock()
					return
				}
				w.mu.Unlock()
				signal(wk.kick)
				continue
			}
			w.report(pod, "kill", err)
		} else if next, err = w.cfg.Sync(w.ctx, pod); err != nil {
			w.report(pod, "sync", err)
		}
		if err != nil {
			// Retry failures with a capped back-off of their own.
			failures++
			next = time.Duration(failures) * 500 * time.Millisecond
			if next > 10*time.Second {
				next = 10 * time.Second
			}
		} else {
			failures = 0
		}
		if next <= 0 || next > w.cfg.Resync {
			next = w.cfg.Resync
		}
		timer.Reset(next)
	}
}

func (w *Workers) report(pod *v1.Pod, op string, err error) {
	if w.cfg.OnError != nil && w.ctx.Err() == nil {
		w.cfg.OnError(pod, op, err)
	}
}
