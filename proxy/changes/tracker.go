package changes

import (
	"fmt"
	"sync"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Tracker receives Service and EndpointSlice events and keeps the latest
// objects plus the set of services changed since the last Snapshot. It is
// safe for concurrent use: informer handlers write, the sync loop reads.
type Tracker struct {
	nodeName string
	notify   func() // called after every change, e.g. to wake the sync loop

	mu       sync.Mutex
	services map[types.NamespacedName]*v1.Service
	slices   map[types.NamespacedName]map[string]*discovery.EndpointSlice // by service, then slice name
	pending  map[types.NamespacedName]bool
}

// NewTracker returns a tracker for the proxy on nodeName; notify may be nil.
func NewTracker(nodeName string, notify func()) *Tracker {
	if notify == nil {
		notify = func() {}
	}
	return &Tracker{
		nodeName: nodeName,
		notify:   notify,
		services: map[types.NamespacedName]*v1.Service{},
		slices:   map[types.NamespacedName]map[string]*discovery.EndpointSlice{},
		pending:  map[types.NamespacedName]bool{},
	}
}

// SetService records the current version of a service (add or update).
func (t *Tracker) SetService(s *v1.Service) {
	t.change(types.NamespacedName{Namespace: s.Namespace, Name: s.Name}, func(n types.NamespacedName) { t.services[n] = s })
}

// DeleteService forgets a service.
func (t *Tracker) DeleteService(s *v1.Service) {
	t.change(types.NamespacedName{Namespace: s.Namespace, Name: s.Name}, func(n types.NamespacedName) { delete(t.services, n) })
}

// SetSlice records the current version of an EndpointSlice.
func (t *Tracker) SetSlice(s *discovery.EndpointSlice) {
	n, ok := sliceService(s)
	if !ok {
		return
	}
	t.change(n, func(n types.NamespacedName) {
		if t.slices[n] == nil {
			t.slices[n] = map[string]*discovery.EndpointSlice{}
		}
		t.slices[n][s.Name] = s
	})
}

// DeleteSlice forgets an EndpointSlice.
func (t *Tracker) DeleteSlice(s *discovery.EndpointSlice) {
	n, ok := sliceService(s)
	if !ok {
		return
	}
	t.change(n, func(n types.NamespacedName) {
		delete(t.slices[n], s.Name)
		if len(t.slices[n]) == 0 {
			delete(t.slices, n)
		}
	})
}

func (t *Tracker) change(n types.NamespacedName, fn func(types.NamespacedName)) {
	t.mu.Lock()
	fn(n)
	t.pending[n] = true
	t.mu.Unlock()
	t.notify()
}

func sliceService(s *discovery.EndpointSlice) (types.NamespacedName, bool) {
	name := s.Labels[discovery.LabelServiceName]
	return types.NamespacedName{Namespace: s.Namespace, Name: name}, name != ""
}

// Pending reports how many services changed since the last Snapshot.
func (t *Tracker) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// Snapshot returns the whole current state and the services changed since
// the previous Snapshot, and clears the pending set. Services that fail to
// convert are left out and reported in errs (one line each), so one bad
// object never blocks the others.
func (t *Tracker) Snapshot() (st State, changed map[types.NamespacedName]bool, errs []error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st = State{Services: map[ServicePortName]*ServicePort{}, Endpoints: map[ServicePortName][]Endpoint{}}
	for n, svc := range t.services {
		ports, err := ServicePorts(svc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		byPort := map[portKey][]Endpoint{}
		for _, sl := range t.slices[n] {
			for k, eps := range SliceEndpoints(sl, t.nodeName) {
				byPort[k] = append(byPort[k], eps...)
			}
		}
		for _, sp := range ports {
			st.Services[sp.Name] = sp
			eps := dedupe(byPort[portKey{sp.Name.Port, sp.Protocol}])
			sortEndpoints(eps)
			st.Endpoints[sp.Name] = eps
		}
	}
	changed, t.pending = t.pending, map[types.NamespacedName]bool{}
	return st, changed, errs
}

// dedupe drops an address listed by two slices during a slice handover,
// keeping the first occurrence.
func dedupe(eps []Endpoint) []Endpoint {
	seen := map[string]bool{}
	out := eps[:0:0]
	for _, e := range eps {
		k := fmt.Sprint(e.AddrPort())
		if !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}
