package reconcile

import (
	"slices"
	"testing"
)

type route struct{ dst, gw string }

func TestDiff(t *testing.T) {
	for _, tc := range []struct {
		name            string
		desired, actual map[string]route
		upsert, delete  []route
	}{
		{name: "equal: nothing to do",
			desired: map[string]route{"a": {"a", "1"}, "b": {"b", "2"}},
			actual:  map[string]route{"a": {"a", "1"}, "b": {"b", "2"}}},
		{name: "deleted by hand is restored",
			desired: map[string]route{"a": {"a", "1"}, "b": {"b", "2"}},
			actual:  map[string]route{"a": {"a", "1"}},
			upsert:  []route{{"b", "2"}}},
		{name: "peer gone is removed",
			desired: map[string]route{"a": {"a", "1"}},
			actual:  map[string]route{"a": {"a", "1"}, "z": {"z", "9"}},
			delete:  []route{{"z", "9"}}},
		{name: "changed is replaced, not deleted",
			desired: map[string]route{"a": {"a", "new"}},
			actual:  map[string]route{"a": {"a", "old"}},
			upsert:  []route{{"a", "new"}}},
		{name: "empty desired removes all",
			desired: nil,
			actual:  map[string]route{"a": {"a", "1"}, "b": {"b", "2"}},
			delete:  []route{{"a", "1"}, {"b", "2"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Diff(tc.desired, tc.actual)
			sortRoutes(p.Upsert)
			sortRoutes(p.Delete)
			if !slices.Equal(p.Upsert, tc.upsert) || !slices.Equal(p.Delete, tc.delete) {
				t.Fatalf("got %+v, want upsert %v delete %v", p, tc.upsert, tc.delete)
			}
			if p.Empty() != (len(tc.upsert)+len(tc.delete) == 0) {
				t.Fatal("Empty disagrees")
			}
		})
	}
}

func sortRoutes(r []route) {
	slices.SortFunc(r, func(a, b route) int {
		if a.dst < b.dst {
			return -1
		}
		if a.dst > b.dst {
			return 1
		}
		return 0
	})
}
