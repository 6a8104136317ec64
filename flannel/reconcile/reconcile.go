// Package reconcile is the pure core of flanneld's repair loop: given what
// should exist and what the kernel holds, it says what to write and what to
// delete. Equal entries produce no work, so a resync with nothing changed
// touches nothing.
package reconcile

// Plan is the work that turns actual into desired.
type Plan[V any] struct {
	Upsert []V // missing or different: write (replace) them
	Delete []V // present but not wanted: remove them
}

// Empty reports whether nothing needs doing.
func (p Plan[V]) Empty() bool { return len(p.Upsert) == 0 && len(p.Delete) == 0 }

// Diff compares entries keyed by what identifies them in the kernel (a
// route's destination, an FDB entry's MAC, a neighbour's IP).
func Diff[K, V comparable](desired, actual map[K]V) Plan[V] {
	var p Plan[V]
	for k, want := range desired {
		if have, ok := actual[k]; !ok || have != want {
			p.Upsert = append(p.Upsert, want)
		}
	}
	for k, have := range actual {
		if _, ok := desired[k]; !ok {
			p.Delete = append(p.Delete, have)
		}
	}
	return p
}
