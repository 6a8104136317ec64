// Package ctrlutil holds the plumbing every hoist controller shares: an
// event recorder bound to a context, and the rate-limited workqueue loop
// (level-triggered: a key is synced from the informer cache, never from the
// event that queued it).
package ctrlutil

import (
	"context"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

// NewRecorder returns an event recorder writing through client as
// component; it stops when ctx ends.
func NewRecorder(ctx context.Context, client kubernetes.Interface, component string) record.EventRecorder {
	b := record.NewBroadcaster(record.WithContext(ctx))
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	go func() {
		<-ctx.Done()
		b.Shutdown()
	}()
	return b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
}

// Queue is the workqueue type controllers use.
type Queue = workqueue.TypedRateLimitingInterface[string]

// NewQueue returns a rate-limited workqueue named name.
func NewQueue(name string) Queue {
	return workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: name})
}

// Enqueue adds obj's namespace/name key (tombstones included) to q.
func Enqueue(q Queue, obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err == nil {
		q.Add(key)
	}
}

// SyncFunc syncs one key. A returned error requeues the key with backoff.
type SyncFunc func(ctx context.Context, key string) error

// GoneFunc handles the key of an object that no longer exists.
type GoneFunc func(ctx context.Context, key string) error

// ObjectSync adapts sync, which works on the object a key names, to a
// SyncFunc: it splits the key, reads the object with get (an informer
// cache lookup) and calls sync, or gone (when not nil) if the object no
// longer exists. A malformed key is dropped: retrying cannot fix it.
func ObjectSync[T any](get func(ns, name string) (T, error), gone GoneFunc, sync func(ctx context.Context, key string, obj T) error) SyncFunc {
	return func(ctx context.Context, key string) error {
		ns, name, err := cache.SplitMetaNamespaceKey(key)
		if err != nil {
			return nil
		}
		obj, err := get(ns, name)
		if apierrors.IsNotFound(err) {
			if gone == nil {
				return nil
			}
			return gone(ctx, key)
		}
		if err != nil {
			return err
		}
		return sync(ctx, key, obj)
	}
}

// Run waits for the informers in synced, then runs workers goroutines
// calling sync for queued keys until ctx ends. It returns once they stop.
func Run(ctx context.Context, name string, q Queue, workers int, syncFn SyncFunc, synced ...cache.InformerSynced) error {
	defer q.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil // WaitForCacheSync only gives up when ctx ends: a shutdown, not an error
	}
	go func() {
		<-ctx.Done()
		q.ShutDown()
	}()
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for processNext(ctx, name, q, syncFn) {
			}
		}()
	}
	wg.Wait()
	return nil
}

func processNext(ctx context.Context, name string, q Queue, syncFn SyncFunc) bool {
	key, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(key)
	if err := syncFn(ctx, key); err != nil {
		level := slog.LevelWarn
		if apierrors.IsConflict(err) {
			// Optimistic concurrency at work (a write from a stale cache);
			// the retry sees the newer object.
			level = slog.LevelDebug
		}
		slog.Log(ctx, level, "sync failed, retrying", "controller", name, "key", key, "err", err)
		q.AddRateLimited(key)
		return true
	}
	q.Forget(key)
	return true
}

// Clock is the time source controllers take, so tests inject a fake.
type Clock func() time.Time
