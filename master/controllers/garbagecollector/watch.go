package garbagecollector

import (
	"context"
	"fmt"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"

	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
)

// ignored: events are never owners or dependents worth tracking, and
// churn a lot (upstream's collector ignores them too).
func ignored(gr schema.GroupResource) bool {
	return gr.Resource == "events" && (gr.Group == "" || gr.Group == "events.k8s.io")
}

// discoverResources lists the preferred version of every served resource
// that can be listed, watched and deleted. Groups whose discovery failed
// are skipped (the rest is still collected).
func discoverResources(d discovery.DiscoveryInterface) ([]resource, error) {
	lists, err := discovery.ServerPreferredResources(d)
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		return nil, fmt.Errorf("garbage collector: discovering resources: %w", err)
	}
	lists = discovery.FilteredBy(discovery.SupportsAllVerbs{Verbs: []string{"list", "watch", "delete"}}, lists)
	var out []resource
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			gr := schema.GroupResource{Group: gv.Group, Resource: r.Name}
			if ignored(gr) {
				continue
			}
			out = append(out, resource{GVR: gv.WithResource(r.Name), Kind: r.Kind, Namespaced: r.Namespaced})
		}
	}
	return out, nil
}

// kindIndex maps group/kind to resource, so an ownerReference of any
// version of a kind resolves to the served one (the UID is the same).
func kindIndex(res []resource) map[schema.GroupKind]resource {
	out := map[schema.GroupKind]resource{}
	for _, r := range res {
		out[schema.GroupKind{Group: r.GVR.Group, Kind: r.Kind}] = r
	}
	return out
}

func (c *Controller) resourceFor(apiVersion, kind string) (resource, bool) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return resource{}, false
	}
	r, ok := c.kinds[schema.GroupKind{Group: gv.Group, Kind: kind}]
	return r, ok
}

// watchAll starts a metadata-only cache per resource that feeds graph and
// queues the objects each change concerns. The informers decode full
// objects (hoist's API serves no PartialObjectMetadata) but keep only
// ObjectMeta. The returned func stops them.
func watchAll(ctx context.Context, dyn dynamic.Interface, res []resource, graph *Graph, loop *ctrlutil.Loop) func() {
	var informers []cache.SharedIndexInformer
	for _, r := range res {
		inf := dynamicInformer(dyn, r.GVR)
		informers = append(informers, inf)
		_ = inf.SetTransform(metadataOnly) // fails only once started
		apiVersion := r.GVR.GroupVersion().String()
		loop.Watch(inf, cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { observe(graph, loop.Queue, apiVersion, r.Kind, obj) },
			UpdateFunc: func(_, obj any) { observe(graph, loop.Queue, apiVersion, r.Kind, obj) },
			DeleteFunc: func(obj any) {
				if m, ok := asMeta(obj); ok {
					enqueue(loop.Queue, graph.Remove(m.GetUID()))
				}
			},
		})
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, inf := range informers {
		wg.Add(1)
		go func() { defer wg.Done(); inf.Run(ctx.Done()) }()
	}
	return func() { cancel(); wg.Wait() }
}

// dynamicInformer lists and watches one resource of any kind.
func dynamicInformer(dyn dynamic.Interface, gvr schema.GroupVersionResource) cache.SharedIndexInformer {
	client := dyn.Resource(gvr)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return client.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return client.Watch(ctx, o)
		},
	}
	// The wrapper tells the reflector whether dyn streams initial events
	// (watch-list) or must list first, as client-go's own informers do.
	return cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, dyn), &unstructured.Unstructured{}, 0, cache.Indexers{})
}

// observe records obj in graph and queues it and the owners it names.
func observe(graph *Graph, q ctrlutil.Queue, apiVersion, kind string, obj any) {
	m, ok := asMeta(obj)
	if !ok {
		return
	}
	n := nodeOf(apiVersion, kind, m)
	touched := graph.Upsert(n)
	enqueue(q, append(touched, n.UID))
}

func nodeOf(apiVersion, kind string, m metav1.Object) *Node {
	return &Node{
		Ref:        Ref{APIVersion: apiVersion, Kind: kind, Namespace: m.GetNamespace(), Name: m.GetName(), UID: m.GetUID()},
		Owners:     m.GetOwnerReferences(),
		Deleting:   m.GetDeletionTimestamp() != nil,
		Finalizers: m.GetFinalizers(),
	}
}

func enqueue(q ctrlutil.Queue, uids []types.UID) {
	for _, u := range uids {
		q.Add(string(u))
	}
}

// asMeta unwraps informer objects, including tombstones.
func asMeta(obj any) (metav1.Object, bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	m, ok := obj.(metav1.Object)
	return m, ok
}

// metadataOnly is the informers' transform: the cache keeps ObjectMeta.
func metadataOnly(obj any) (any, error) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		inner, err := metadataOnly(t.Obj)
		return cache.DeletedFinalStateUnknown{Key: t.Key, Obj: inner}, err
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return obj, nil
	}
	if _, done := obj.(*metav1.PartialObjectMetadata); done {
		return obj, nil
	}
	p := &metav1.PartialObjectMetadata{}
	p.ObjectMeta = metav1.ObjectMeta{
		Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(), ResourceVersion: m.GetResourceVersion(),
		OwnerReferences: m.GetOwnerReferences(), Finalizers: m.GetFinalizers(),
		DeletionTimestamp: m.GetDeletionTimestamp(),
	}
	return p, nil
}
