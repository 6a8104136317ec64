package informers

import (
	"context"
	"reflect"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers/internalinterfaces"
	"k8s.io/client-go/tools/cache"
)

// Term is a view of a long-lived factory for one leadership term of a
// component that is rebuilt every term (the controller manager, the
// scheduler). Its informers are the shared factory's, started with stop
// (the factory's lifetime, not the term's), so several components and
// successive terms hold one copy of each cache; the event handlers the
// term adds are removed when ctx ends, so a finished term leaves nothing
// registered. shared must come from NewSharedInformerFactory.
func Term(ctx context.Context, shared SharedInformerFactory, stop <-chan struct{}) SharedInformerFactory {
	f := shared.(*factory)
	t := &term{shared: f, ctx: ctx, stop: stop, informers: map[reflect.Type]*termInformer{}}
	t.groups = groups{f: t, namespace: f.namespace, tweak: f.tweak}
	return t
}

type term struct {
	groups
	shared   *factory
	ctx      context.Context
	stop     <-chan struct{}
	removals sync.WaitGroup // handler removals still to run after ctx ends

	mu        sync.Mutex
	informers map[reflect.Type]*termInformer
}

func (t *term) InformerFor(obj runtime.Object, newFunc internalinterfaces.NewInformerFunc) cache.SharedIndexInformer {
	t.mu.Lock()
	defer t.mu.Unlock()
	typ := reflect.TypeOf(obj)
	if inf, ok := t.informers[typ]; ok {
		return inf
	}
	inf := &termInformer{SharedIndexInformer: t.shared.InformerFor(obj, newFunc), term: t}
	t.informers[typ] = inf
	return inf
}

// Start starts the shared informers for the factory's lifetime; the
// term's own stop channel only ends its handlers (through ctx).
func (t *term) Start(<-chan struct{}) { t.shared.Start(t.stop) }

func (t *term) WaitForCacheSync(stopCh <-chan struct{}) map[reflect.Type]bool {
	return t.shared.WaitForCacheSync(stopCh)
}

// Shutdown is the shared factory owner's to call.
func (t *term) Shutdown() {}

func (t *term) InformerName() *cache.InformerName { return nil }

// termInformer is a shared informer whose handlers, added through it, are
// removed when the term ends, and which a term cannot stop.
type termInformer struct {
	cache.SharedIndexInformer
	term *term

	mu   sync.Mutex
	regs []cache.ResourceEventHandlerRegistration
}

// HasSynced also waits for the term's own handlers to have been handed
// every object already in the cache: a shared informer synced long ago
// says nothing about a handler added a moment ago, and a component that
// builds state from its handlers (the scheduler's node cache) must not
// start on half of it.
func (i *termInformer) HasSynced() bool {
	if !i.SharedIndexInformer.HasSynced() {
		return false
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, r := range i.regs {
		if !r.HasSynced() {
			return false
		}
	}
	return true
}

func (i *termInformer) AddEventHandler(h cache.ResourceEventHandler) (cache.ResourceEventHandlerRegistration, error) {
	return i.removeAtEnd(i.SharedIndexInformer.AddEventHandler(h))
}

func (i *termInformer) AddEventHandlerWithResyncPeriod(h cache.ResourceEventHandler, d time.Duration) (cache.ResourceEventHandlerRegistration, error) {
	return i.removeAtEnd(i.SharedIndexInformer.AddEventHandlerWithResyncPeriod(h, d))
}

func (i *termInformer) AddEventHandlerWithOptions(h cache.ResourceEventHandler, o cache.HandlerOptions) (cache.ResourceEventHandlerRegistration, error) {
	return i.removeAtEnd(i.SharedIndexInformer.AddEventHandlerWithOptions(h, o))
}

func (i *termInformer) removeAtEnd(reg cache.ResourceEventHandlerRegistration, err error) (cache.ResourceEventHandlerRegistration, error) {
	if err == nil {
		i.mu.Lock()
		i.regs = append(i.regs, reg)
		i.mu.Unlock()
		i.term.removals.Add(1)
		context.AfterFunc(i.term.ctx, func() {
			defer i.term.removals.Done()
			_ = i.SharedIndexInformer.RemoveEventHandler(reg)
		})
	}
	return reg, err
}

// Run waits for stopCh without running the informer: the shared factory
// runs it, and a shared informer cannot be restarted once stopped.
func (i *termInformer) Run(stopCh <-chan struct{}) { <-stopCh }

func (i *termInformer) RunWithContext(ctx context.Context) { <-ctx.Done() }
