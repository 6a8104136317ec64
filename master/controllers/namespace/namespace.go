// Package namespace is the namespace lifecycle controller: when a namespace
// is deleted it deletes everything in it through the API, and once nothing
// is left it removes the "kubernetes" finalizer so the namespace goes away.
package namespace

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/hoist-project/hoist/internal/informers"
)

// Config of the controller.
type Config struct {
	Client    kubernetes.Interface
	Dynamic   dynamic.Interface
	Discovery discovery.DiscoveryInterface
	// Retry is how soon a namespace whose content is still going away is
	// looked at again (default 2s).
	Retry time.Duration
}

// Run processes deleted namespaces until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Retry == 0 {
		cfg.Retry = 2 * time.Second
	}
	factory := informers.NewSharedInformerFactory(cfg.Client, 0)
	inf := factory.Core().V1().Namespaces()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	defer queue.ShutDown()
	enqueue := func(obj any) {
		if ns, ok := obj.(*corev1.Namespace); ok && ns.DeletionTimestamp != nil {
			queue.Add(ns.Name)
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, n any) { enqueue(n) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		return ctx.Err()
	}
	go func() { <-ctx.Done(); queue.ShutDown() }()
	for {
		name, quit := queue.Get()
		if quit {
			return nil
		}
		done, err := sync(ctx, cfg, name)
		switch {
		case err != nil:
			slog.Warn("namespace controller", "namespace", name, "err", err)
			queue.AddRateLimited(name)
		case !done:
			queue.AddAfter(name, cfg.Retry)
		default:
			queue.Forget(name)
		}
		queue.Done(name)
	}
}

// sync deletes the content of a terminating namespace and finalizes it
// once empty. It reports whether the namespace is finished.
func sync(ctx context.Context, cfg Config, name string) (bool, error) {
	ns, err := cfg.Client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if ns.DeletionTimestamp == nil || !hasFinalizer(ns) {
		return true, nil
	}
	resources, err := namespacedResources(cfg.Discovery)
	if err != nil {
		return false, err
	}
	remaining := 0
	for _, gvr := range resources {
		rc := cfg.Dynamic.Resource(gvr).Namespace(name)
		bg := metav1.DeletePropagationBackground
		if err := rc.DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &bg}, metav1.ListOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("delete %s in %s: %w", gvr.Resource, name, err)
		}
		list, err := rc.List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, fmt.Errorf("list %s in %s: %w", gvr.Resource, name, err)
		}
		remaining += len(list.Items)
	}
	if remaining > 0 {
		return false, nil // e.g. pods still terminating on their nodes
	}
	var keep []corev1.FinalizerName
	for _, f := range ns.Spec.Finalizers {
		if f != corev1.FinalizerKubernetes {
			keep = append(keep, f)
		}
	}
	ns.Spec.Finalizers = keep
	if _, err := cfg.Client.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return false, err
	}
	return true, nil
}

func hasFinalizer(ns *corev1.Namespace) bool {
	for _, f := range ns.Spec.Finalizers {
		if f == corev1.FinalizerKubernetes {
			return true
		}
	}
	return false
}

// namespacedResources lists the namespaced resources that can be listed and
// deleted by collection.
func namespacedResources(d discovery.DiscoveryInterface) ([]schema.GroupVersionResource, error) {
	lists, err := d.ServerPreferredNamespacedResources()
	if err != nil {
		return nil, err
	}
	var out []schema.GroupVersionResource
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if has(r.Verbs, "deletecollection") && has(r.Verbs, "list") {
				out = append(out, gv.WithResource(r.Name))
			}
		}
	}
	return out, nil
}

func has(verbs []string, v string) bool {
	for _, x := range verbs {
		if x == v {
			return true
		}
	}
	return false
}
