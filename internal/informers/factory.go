// Package informers is a shared informer factory for the few API groups
// hoist's components watch. It has the shape of client-go's informers
// package (Core().V1().Pods() and so on), but importing client-go's
// factory compiles informers for every API group Kubernetes has — about a
// third of hoist's cold build time — for the handful used here.
package informers

import (
	"reflect"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	appsv1 "k8s.io/client-go/informers/apps/v1"
	batchv1 "k8s.io/client-go/informers/batch/v1"
	coordinationv1 "k8s.io/client-go/informers/coordination/v1"
	corev1 "k8s.io/client-go/informers/core/v1"
	discoveryv1 "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/informers/internalinterfaces"
	policyv1 "k8s.io/client-go/informers/policy/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// SharedInformerFactory hands out one shared informer per object type.
type SharedInformerFactory interface {
	internalinterfaces.SharedInformerFactory
	// WaitForCacheSync waits until every started informer has synced or
	// stopCh closes, and reports each one's state.
	WaitForCacheSync(stopCh <-chan struct{}) map[reflect.Type]bool
	// Shutdown stops the informers and waits for their goroutines.
	Shutdown()

	Apps() AppsGroup
	Batch() BatchGroup
	Coordination() CoordinationGroup
	Core() CoreGroup
	Discovery() DiscoveryGroup
	Policy() PolicyGroup
}

// The API groups, each at the one version hoist uses.
type (
	AppsGroup         interface{ V1() appsv1.Interface }
	BatchGroup        interface{ V1() batchv1.Interface }
	CoordinationGroup interface {
		V1() coordinationv1.Interface
	}
	CoreGroup      interface{ V1() corev1.Interface }
	DiscoveryGroup interface{ V1() discoveryv1.Interface }
	PolicyGroup    interface{ V1() policyv1.Interface }
)

// Option configures a factory.
type Option func(*factory)

// WithNamespace limits the informers to one namespace.
func WithNamespace(namespace string) Option {
	return func(f *factory) { f.namespace = namespace }
}

// WithTweakListOptions edits every list and watch request (selectors).
func WithTweakListOptions(tweak internalinterfaces.TweakListOptionsFunc) Option {
	return func(f *factory) { f.tweak = tweak }
}

// NewSharedInformerFactory watches all namespaces; resync 0 disables resyncs.
func NewSharedInformerFactory(client kubernetes.Interface, resync time.Duration) SharedInformerFactory {
	return NewSharedInformerFactoryWithOptions(client, resync)
}

// NewSharedInformerFactoryWithOptions is NewSharedInformerFactory with options.
func NewSharedInformerFactoryWithOptions(client kubernetes.Interface, resync time.Duration, opts ...Option) SharedInformerFactory {
	f := &factory{
		client:    client,
		resync:    resync,
		namespace: metav1.NamespaceAll,
		informers: map[reflect.Type]cache.SharedIndexInformer{},
		started:   map[reflect.Type]bool{},
	}
	for _, o := range opts {
		o(f)
	}
	f.groups = groups{f: f, namespace: f.namespace, tweak: f.tweak}
	return f
}

type factory struct {
	groups
	client    kubernetes.Interface
	resync    time.Duration
	namespace string
	tweak     internalinterfaces.TweakListOptionsFunc

	mu        sync.Mutex
	informers map[reflect.Type]cache.SharedIndexInformer
	started   map[reflect.Type]bool
	wg        sync.WaitGroup
	stopped   bool
}

// InformerName is nil: informer metrics are not published.
func (f *factory) InformerName() *cache.InformerName { return nil }

func (f *factory) Start(stopCh <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	for t, inf := range f.informers {
		if f.started[t] {
			continue
		}
		f.started[t] = true
		f.wg.Add(1)
		go func() { defer f.wg.Done(); inf.Run(stopCh) }()
	}
}

func (f *factory) Shutdown() {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *factory) WaitForCacheSync(stopCh <-chan struct{}) map[reflect.Type]bool {
	f.mu.Lock()
	started := map[reflect.Type]cache.SharedIndexInformer{}
	for t, inf := range f.informers {
		if f.started[t] {
			started[t] = inf
		}
	}
	f.mu.Unlock()
	res := map[reflect.Type]bool{}
	for t, inf := range started {
		res[t] = cache.WaitForCacheSync(stopCh, inf.HasSynced)
	}
	return res
}

func (f *factory) InformerFor(obj runtime.Object, newFunc internalinterfaces.NewInformerFunc) cache.SharedIndexInformer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := reflect.TypeOf(obj)
	if inf, ok := f.informers[t]; ok {
		return inf
	}
	inf := newFunc(f.client, f.resync)
	f.informers[t] = inf
	return inf
}

type group[V any] struct{ v1 V }

func (g group[V]) V1() V { return g.v1 }

// groups hands out the typed group accessors over any factory; the
// factory and a Term share them.
type groups struct {
	f         internalinterfaces.SharedInformerFactory
	namespace string
	tweak     internalinterfaces.TweakListOptionsFunc
}

func (g groups) Apps() AppsGroup {
	return group[appsv1.Interface]{appsv1.New(g.f, g.namespace, g.tweak)}
}

func (g groups) Batch() BatchGroup {
	return group[batchv1.Interface]{batchv1.New(g.f, g.namespace, g.tweak)}
}

func (g groups) Coordination() CoordinationGroup {
	return group[coordinationv1.Interface]{coordinationv1.New(g.f, g.namespace, g.tweak)}
}

func (g groups) Core() CoreGroup {
	return group[corev1.Interface]{corev1.New(g.f, g.namespace, g.tweak)}
}

func (g groups) Discovery() DiscoveryGroup {
	return group[discoveryv1.Interface]{discoveryv1.New(g.f, g.namespace, g.tweak)}
}

func (g groups) Policy() PolicyGroup {
	return group[policyv1.Interface]{policyv1.New(g.f, g.namespace, g.tweak)}
}
