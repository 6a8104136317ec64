package ebpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Applier makes the kernel's service and backend maps equal to a Maps,
// writing only entries that differ from what they hold.
type Applier struct {
	services, backends *ebpf.Map
	prev               *Maps // what the maps hold; nil: read them first
}

// NewApplier returns an applier over the (usually pinned) maps.
func NewApplier(services, backends *ebpf.Map) *Applier {
	return &Applier{services: services, backends: backends}
}

// ApplyStats counts map writes.
type ApplyStats struct{ Puts, Deletes int }

// Apply writes m in an order that keeps every reader consistent enough:
// new backend slots first, then the service entries (count flips to the
// new set), then deletions of services and of slots beyond the counts.
// On a restart (prev unknown) the current contents are read from the
// kernel, so an unchanged state writes nothing.
func (a *Applier) Apply(m Maps) (ApplyStats, error) {
	var st ApplyStats
	prev, err := a.Current()
	if err != nil {
		return st, err
	}
	a.prev = nil // unknown until this apply completes
	for k, v := range m.Backends {
		if old, ok := prev.Backends[k]; !ok || old != v {
			if err := a.backends.Put(k, v); err != nil {
				return st, fmt.Errorf("ebpf: backend map: %w", err)
			}
			st.Puts++
		}
	}
	for k, v := range m.Services {
		if old, ok := prev.Services[k]; !ok || old != v {
			if err := a.services.Put(k, v); err != nil {
				return st, fmt.Errorf("ebpf: service map: %w", err)
			}
			st.Puts++
		}
	}
	for k := range prev.Services {
		if _, ok := m.Services[k]; !ok {
			if err := a.services.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return st, fmt.Errorf("ebpf: service map: %w", err)
			}
			st.Deletes++
		}
	}
	for k := range prev.Backends {
		if _, ok := m.Backends[k]; !ok {
			if err := a.backends.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return st, fmt.Errorf("ebpf: backend map: %w", err)
			}
			st.Deletes++
		}
	}
	a.prev = &m
	return st, nil
}

// Current returns what the maps hold (read from the kernel unless this
// applier wrote it).
func (a *Applier) Current() (Maps, error) {
	if a.prev == nil {
		cur, err := a.read()
		if err != nil {
			return cur, err
		}
		a.prev = &cur
	}
	return *a.prev, nil
}

// Forget makes the next Apply read the maps again, repairing entries that
// someone else changed.
func (a *Applier) Forget() { a.prev = nil }

func (a *Applier) read() (Maps, error) {
	m := Maps{Services: map[ServiceKey]ServiceValue{}, Backends: map[BackendKey]BackendValue{}}
	var sk ServiceKey
	var sv ServiceValue
	it := a.services.Iterate()
	for it.Next(&sk, &sv) {
		m.Services[sk] = sv
	}
	if err := it.Err(); err != nil {
		return m, fmt.Errorf("ebpf: read service map: %w", err)
	}
	var bk BackendKey
	var bv BackendValue
	it = a.backends.Iterate()
	for it.Next(&bk, &bv) {
		m.Backends[bk] = bv
	}
	if err := it.Err(); err != nil {
		return m, fmt.Errorf("ebpf: read backend map: %w", err)
	}
	return m, nil
}
