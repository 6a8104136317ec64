package kube

import (
	"context"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// reach tracks whether the Node informer's calls reach the API server.
// client-go retries a refused watch silently (verbosity 4), so without it an
// API outage leaves nothing actionable in the log; with it there is one line
// when calls start failing and one when they succeed again, not one per retry.
type reach struct {
	log  *slog.Logger
	mu   sync.Mutex
	down bool
}

func (r *reach) observe(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err != nil && !r.down:
		r.log.Error("cannot reach the API server: Node list/watch failing; routes and FDB entries stay as they are and the watch is retried until it answers (is the master running and --kubeconfig's server right?)", "err", err)
	case err == nil && r.down:
		r.log.Info("API server reachable again; Node watch resumed")
	}
	r.down = err != nil
}

// nodeListWatch is client-go's Node ListerWatcher with every call reported to r.
func nodeListWatch(client kubernetes.Interface, r *reach) cache.ListerWatcher {
	nodes := client.CoreV1().Nodes()
	list := func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		l, err := nodes.List(ctx, o)
		r.observe(err)
		return l, err
	}
	watchFn := func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		w, err := nodes.Watch(ctx, o)
		r.observe(err)
		return w, err
	}
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc:  list,
		WatchFuncWithContext: watchFn,
	}, client)
}

// nodeInformer is the Node informer flanneld's leases come from.
func nodeInformer(client kubernetes.Interface, log *slog.Logger) cache.SharedIndexInformer {
	return cache.NewSharedIndexInformer(nodeListWatch(client, &reach{log: log}), &corev1.Node{}, 10*time.Minute, cache.Indexers{})
}
