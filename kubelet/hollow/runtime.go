package hollow

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

const byNodeIndex = "spec.nodeName"

// fakeRuntime is the fake container runtime of every hollow node: one pod
// informer (bound pods only, indexed by node) feeds one rate-limited queue
// of pod keys served by a small worker pool.
type fakeRuntime struct {
	cfg   *Config
	alive func(string) (*node, bool)
	pods  cache.SharedIndexInformer
	nodes cache.SharedIndexInformer
	queue workqueue.TypedRateLimitingInterface[string]
	ips   *podIPs
}

func newRuntime(cfg *Config, alive func(string) (*node, bool)) *fakeRuntime {
	bound := fields.OneTermNotEqualSelector("spec.nodeName", "").String()
	podAPI, nodeAPI := cfg.Client.CoreV1().Pods(metav1.NamespaceAll), cfg.Client.CoreV1().Nodes()
	pods := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = bound
			return podAPI.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = bound
			return podAPI.Watch(ctx, o)
		}}, cfg.Client),
		&corev1.Pod{}, 0, cache.Indexers{byNodeIndex: func(obj any) ([]string, error) {
			if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
				return []string{p.Spec.NodeName}, nil
			}
			return nil, nil
		}})
	hollowNodes := LabelHollow + "=true"
	nodes := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = hollowNodes
			return nodeAPI.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = hollowNodes
			return nodeAPI.Watch(ctx, o)
		}}, cfg.Client),
		&corev1.Node{}, 0, cache.Indexers{})
	return &fakeRuntime{
		cfg: cfg, alive: alive, pods: pods, nodes: nodes, ips: newPodIPs(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "hollow-pods"}),
	}
}

// start runs the informers and workers until ctx ends; it returns once the
// caches have synced.
func (r *fakeRuntime) start(ctx context.Context, wg *sync.WaitGroup) error {
	enqueue := func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok {
			if _, mine := r.alive(p.Spec.NodeName); mine {
				r.queue.Add(p.Namespace + "/" + p.Name)
			}
		}
	}
	_, err := r.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				r.ips.release(p.Spec.NodeName, p.UID)
			}
		},
	})
	if err != nil {
		return err
	}
	wg.Add(2)
	go func() { defer wg.Done(); r.pods.Run(ctx.Done()) }()
	go func() { defer wg.Done(); r.nodes.Run(ctx.Done()) }()
	if !cache.WaitForCacheSync(ctx.Done(), r.pods.HasSynced, r.nodes.HasSynced) {
		r.queue.ShutDown()
		return fmt.Errorf("hollow: pod and node caches did not sync: %w", ctx.Err())
	}
	go func() { <-ctx.Done(); r.queue.ShutDown() }()
	for range r.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r.next(ctx) {
			}
		}()
	}
	return nil
}

func (r *fakeRuntime) next(ctx context.Context) bool {
	key, quit := r.queue.Get()
	if quit {
		return false
	}
	defer r.queue.Done(key)
	if err := r.sync(ctx, key); err != nil && ctx.Err() == nil {
		r.cfg.Log.Warn("hollow runtime: pod not synced; retrying", "pod", key, "err", err)
		r.queue.AddRateLimited(key)
		return true
	}
	r.queue.Forget(key)
	return true
}

// sync makes one pod's status what a kubelet that started it at once
// would report, or acknowledges its deletion.
func (r *fakeRuntime) sync(ctx context.Context, key string) error {
	obj, exists, err := r.pods.GetIndexer().GetByKey(key)
	if err != nil || !exists {
		return err
	}
	pod := obj.(*corev1.Pod)
	nd, mine := r.alive(pod.Spec.NodeName)
	if !mine {
		return nil
	}
	pods := r.cfg.Client.CoreV1().Pods(pod.Namespace)
	if pod.DeletionTimestamp != nil {
		err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: new(int64), Preconditions: metav1.NewUIDPreconditions(string(pod.UID))})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil // gone, or replaced by a pod of the same name (its own event follows)
		}
		return err
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || isRunning(pod) {
		r.ips.reserve(pod.Spec.NodeName, pod.UID, pod.Status.PodIP)
		return nil
	}
	ip, err := r.ips.assign(pod.Spec.NodeName, pod.UID, r.podCIDR(nd))
	if err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{"status": runningStatus(pod, nd.ip.String(), ip.String(), metav1.NewTime(time.Now()))})
	if err != nil {
		return err
	}
	_, err = pods.Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) {
		r.ips.release(pod.Spec.NodeName, pod.UID)
		return nil
	}
	return err
}

// podCIDR is the node's spec.podCIDR (node IPAM), or a made-up /24 in
// 100.64.0.0/10 when the master runs no IPAM.
func (r *fakeRuntime) podCIDR(nd *node) string {
	if obj, ok, _ := r.nodes.GetIndexer().GetByKey(nd.name); ok {
		if cidr := obj.(*corev1.Node).Spec.PodCIDR; cidr != "" {
			return cidr
		}
	}
	return fallbackCIDR(nd.index)
}
