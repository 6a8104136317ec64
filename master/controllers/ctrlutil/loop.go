package ctrlutil

import (
	"context"

	"k8s.io/client-go/tools/cache"
)

// Loop is the work loop of one controller: its named queue, the informers
// whose caches must sync before the first key is processed, and how many
// keys are synced at once. Controllers hold one and register their
// informers through it, so an informer with a handler is never forgotten
// in the wait list.
type Loop struct {
	Name    string
	Queue   Queue
	Workers int
	synced  []cache.InformerSynced
}

// NewLoop returns the loop of controller name running workers workers,
// or defaultWorkers when workers is not positive.
func NewLoop(name string, workers, defaultWorkers int) *Loop {
	if workers <= 0 {
		workers = defaultWorkers
	}
	return &Loop{Name: name, Queue: NewQueue(name), Workers: workers}
}

// Watch registers h on inf and makes Run wait for inf's cache.
func (l *Loop) Watch(inf cache.SharedIndexInformer, h cache.ResourceEventHandler) {
	_, _ = inf.AddEventHandler(h) // fails only once inf has stopped, never while a controller is built
	l.synced = append(l.synced, inf.HasSynced)
}

// WatchKeys queues the key of every object inf reports: the informer of
// the kind the controller reconciles.
func (l *Loop) WatchKeys(inf cache.SharedIndexInformer) {
	l.Watch(inf, EnqueueHandler(l.Queue))
}

// Run syncs queued keys with sync until ctx ends (see the package Run).
func (l *Loop) Run(ctx context.Context, sync SyncFunc) error {
	return Run(ctx, l.Name, l.Queue, l.Workers, sync, l.synced...)
}
