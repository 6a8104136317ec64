// Package garbagecollector is the garbage collector controller: it keeps a
// graph of ownerReferences over every listable, watchable, deletable
// resource and deletes dependents whose owners are gone (background),
// detaches dependents of owners deleted with the Orphan policy, and
// deletes dependents of owners deleted with the Foreground policy before
// letting the owner go. Decide (core.go) picks the actions; this file
// feeds it and applies them.
package garbagecollector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
)

// Config of the collector.
type Config struct {
	// Dynamic reads and changes objects of any resource; when nil it is
	// built over the same connection as the typed client.
	Dynamic dynamic.Interface
	// Workers is how many objects are processed at once (default 5).
	Workers int
}

// Controller is the garbage collector.
type Controller struct {
	client  kubernetes.Interface
	dynamic dynamic.Interface
	workers int
	graph   *Graph
	// kinds maps each served group/kind to its resource; set by Run
	// before any worker starts, read-only afterwards.
	kinds map[schema.GroupKind]resource
}

// New builds the collector; it fails when no dynamic client is given and
// none can be derived from client.
func New(client kubernetes.Interface, cfg Config) (*Controller, error) {
	dyn := cfg.Dynamic
	if dyn == nil {
		var err error
		if dyn, err = dynamicFor(client); err != nil {
			return nil, err
		}
	}
	return &Controller{client: client, dynamic: dyn, workers: cfg.Workers, graph: NewGraph()}, nil
}

// dynamicFor builds a dynamic client on the connection (server address
// and authenticated transport) of a real clientset.
func dynamicFor(client kubernetes.Interface) (dynamic.Interface, error) {
	cs, ok := client.(*kubernetes.Clientset)
	if !ok {
		return nil, fmt.Errorf("garbage collector: no dynamic client configured and none derivable from %T", client)
	}
	rc, ok := cs.Discovery().RESTClient().(*rest.RESTClient)
	if !ok || rc.Client == nil {
		return nil, errors.New("garbage collector: the clientset has no HTTP client to build a dynamic client on")
	}
	// Sharing the rate limiter keeps the typed client's QPS budget (the
	// default 5 QPS would stall collection behind the initial lists).
	return dynamic.NewForConfigAndClient(&rest.Config{Host: rc.Get().URL().String(), RateLimiter: rc.GetRateLimiter()}, rc.Client)
}

// Run discovers the resources, watches them, and collects garbage until
// ctx ends. Every object is queued on the initial list, so anything
// orphaned while no collector ran is found (level-triggered).
func (c *Controller) Run(ctx context.Context) error {
	var res []resource
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(context.Context) (bool, error) {
		var err error
		if res, err = discoverResources(c.client.Discovery()); err != nil {
			// The API may be briefly unavailable (e.g. right after a
			// leader change); retrying beats stopping every controller.
			slog.Warn("garbage collector: discovery failed, retrying", "err", err)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil // ctx ended
	}
	c.kinds = kindIndex(res)
	loop := ctrlutil.NewLoop("garbagecollector", c.workers, 5)
	stop := watchAll(ctx, c.dynamic, res, c.graph, loop)
	defer stop()
	return loop.Run(ctx, c.sync)
}

// sync decides and applies the actions for the object with UID key.
func (c *Controller) sync(ctx context.Context, key string) error {
	n, ok := c.graph.Get(types.UID(key))
	if !ok {
		return nil // gone; its dependents were queued when it went
	}
	owners := map[types.UID]OwnerState{}
	if !n.Deleting {
		if c.ownerOutsideGraph(n) {
			// An owner is about to be judged by a live read: judge the
			// dependent's references by one too. Watches of different
			// kinds are not ordered, so the graph may still hold a
			// reference already removed — an Orphan deletion detaches the
			// dependents and then the owner goes, and the owner's deletion
			// can arrive first.
			live, ok, err := c.liveOwners(ctx, n)
			if err != nil || !ok {
				return err
			}
			n.Owners = live
		}
		for _, o := range n.Owners {
			st, err := c.ownerState(ctx, n, o)
			if err != nil {
				return err
			}
			owners[o.UID] = st
		}
	}
	var errs []error
	for _, a := range Decide(n, c.graph.Dependents(n.UID), owners) {
		if err := c.apply(ctx, a); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ownerOutsideGraph reports whether one of n's owners is not in the graph.
func (c *Controller) ownerOutsideGraph(n Node) bool {
	for _, o := range n.Owners {
		if _, ok := c.graph.Get(o.UID); !ok {
			return true
		}
	}
	return false
}

// liveOwners reads n's owner references from the API; ok is false when n
// is gone or replaced by another object of its name.
func (c *Controller) liveOwners(ctx context.Context, n Node) (refs []metav1.OwnerReference, ok bool, err error) {
	r, found := c.resourceFor(n.APIVersion, n.Kind)
	if !found {
		return nil, false, fmt.Errorf("no served resource for %s %s", n.APIVersion, n.Kind)
	}
	live, err := c.dynamic.Resource(r.GVR).Namespace(n.Namespace).Get(ctx, n.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %s %s/%s: %w", n.Kind, n.Namespace, n.Name, err)
	}
	if live.GetUID() != n.UID {
		return nil, false, nil
	}
	return live.GetOwnerReferences(), true, nil
}

// ownerState: present when the graph holds the owner; otherwise a live
// read decides, so a cache that has not seen the owner yet never causes a
// deletion.
func (c *Controller) ownerState(ctx context.Context, dep Node, o metav1.OwnerReference) (OwnerState, error) {
	if _, ok := c.graph.Get(o.UID); ok {
		return OwnerPresent, nil
	}
	r, ok := c.resourceFor(o.APIVersion, o.Kind)
	if !ok {
		// An owner of a kind not served (yet): never delete on doubt.
		slog.Debug("garbage collector: owner kind not served", "dependent", dep.Name, "owner", o.Kind)
		return OwnerPresent, nil
	}
	ns := ""
	if r.Namespaced {
		ns = dep.Namespace
	}
	live, err := c.dynamic.Resource(r.GVR).Namespace(ns).Get(ctx, o.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return OwnerAbsent, nil
	case err != nil:
		return OwnerPresent, fmt.Errorf("reading owner %s %s/%s: %w", o.Kind, ns, o.Name, err)
	case live.GetUID() != o.UID:
		return OwnerAbsent, nil
	}
	return OwnerPresent, nil
}

// apply performs one action; an object already gone is not an error.
func (c *Controller) apply(ctx context.Context, a Action) error {
	r, ok := c.resourceFor(a.Target.APIVersion, a.Target.Kind)
	if !ok {
		return fmt.Errorf("no served resource for %s %s", a.Target.APIVersion, a.Target.Kind)
	}
	ri := c.dynamic.Resource(r.GVR).Namespace(a.Target.Namespace)
	var err error
	switch a.Kind {
	case Delete:
		uid := a.Target.UID
		policy := a.Policy
		err = ri.Delete(ctx, a.Target.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &policy})
		if err == nil {
			slog.Info("garbage collector deleted", "kind", a.Target.Kind, "namespace", a.Target.Namespace, "name", a.Target.Name, "propagation", policy)
		}
	case RemoveOwnerRefs:
		err = editMeta(ctx, ri, a.Target, "ownerReferences", func(u *unstructured.Unstructured) any {
			refs := slices.DeleteFunc(u.GetOwnerReferences(), func(o metav1.OwnerReference) bool { return slices.Contains(a.Owners, o.UID) })
			if len(refs) == len(u.GetOwnerReferences()) {
				return nil
			}
			return refs
		})
	case RemoveFinalizer:
		err = editMeta(ctx, ri, a.Target, "finalizers", func(u *unstructured.Unstructured) any {
			if !slices.Contains(u.GetFinalizers(), a.Finalizer) {
				return nil
			}
			return slices.DeleteFunc(u.GetFinalizers(), func(f string) bool { return f == a.Finalizer })
		})
	}
	if apierrors.IsNotFound(err) || (a.Kind == Delete && apierrors.IsConflict(err)) {
		return nil // gone, or replaced by a new object of the same name
	}
	if err != nil {
		return fmt.Errorf("%s %s/%s: %w", a.Target.Kind, a.Target.Namespace, a.Target.Name, err)
	}
	return nil
}

// editMeta sets metadata.field of the live object target to what edit
// returns (nil: nothing to change), guarded by UID and resourceVersion so
// a concurrent change is retried rather than overwritten.
func editMeta(ctx context.Context, ri dynamic.ResourceInterface, target Ref, field string, edit func(*unstructured.Unstructured) any) error {
	live, err := ri.Get(ctx, target.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if live.GetUID() != target.UID {
		return nil // a different object now
	}
	v := edit(live)
	if v == nil {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		field: v, "uid": target.UID, "resourceVersion": live.GetResourceVersion()}})
	if err != nil {
		return err
	}
	_, err = ri.Patch(ctx, target.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

// resource is one served resource the collector watches.
type resource struct {
	GVR        schema.GroupVersionResource
	Kind       string
	Namespaced bool
}
