package garbagecollector

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func node(uid, name string, owners ...metav1.OwnerReference) Node {
	return Node{Ref: Ref{APIVersion: "apps/v1", Kind: "ReplicaSet", Namespace: "ns", Name: name, UID: types.UID(uid)}, Owners: owners}
}

func owner(uid string, block bool) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "d-" + uid, UID: types.UID(uid), BlockOwnerDeletion: &block}
}

func TestDecideBackground(t *testing.T) {
	dep := node("rs", "rs", owner("d", false))
	if acts := Decide(dep, nil, map[types.UID]OwnerState{"d": OwnerPresent}); len(acts) != 0 {
		t.Fatalf("owner present: %v", acts)
	}
	acts := Decide(dep, nil, map[types.UID]OwnerState{"d": OwnerAbsent})
	want := []Action{{Kind: Delete, Target: dep.Ref, Policy: metav1.DeletePropagationBackground}}
	if !reflect.DeepEqual(acts, want) {
		t.Fatalf("owner gone: %+v, want %+v", acts, want)
	}
	// One of two owners gone: only the dangling reference goes.
	two := node("rs", "rs", owner("d", false), owner("e", false))
	acts = Decide(two, nil, map[types.UID]OwnerState{"d": OwnerAbsent, "e": OwnerPresent})
	want = []Action{{Kind: RemoveOwnerRefs, Target: two.Ref, Owners: []types.UID{"d"}}}
	if !reflect.DeepEqual(acts, want) {
		t.Fatalf("one owner gone: %+v, want %+v", acts, want)
	}
	// Nothing owns it: nothing to do.
	if acts := Decide(node("x", "x"), nil, nil); len(acts) != 0 {
		t.Fatalf("unowned: %v", acts)
	}
}

func deleting(n Node, finalizers ...string) Node {
	n.Deleting = true
	n.Finalizers = finalizers
	return n
}

func TestDecideOrphan(t *testing.T) {
	o := deleting(node("d", "d"), FinalizerOrphan, "other")
	deps := []Node{node("a", "a", owner("d", true)), node("b", "b", owner("d", false))}
	acts := Decide(o, deps, nil)
	want := []Action{
		{Kind: RemoveOwnerRefs, Target: deps[0].Ref, Owners: []types.UID{"d"}},
		{Kind: RemoveOwnerRefs, Target: deps[1].Ref, Owners: []types.UID{"d"}},
		{Kind: RemoveFinalizer, Target: o.Ref, Finalizer: FinalizerOrphan},
	}
	if !reflect.DeepEqual(acts, want) {
		t.Fatalf("orphan: %+v, want %+v", acts, want)
	}
	// No dependents: the finalizer goes at once.
	if acts := Decide(o, nil, nil); !reflect.DeepEqual(acts, want[2:]) {
		t.Fatalf("orphan without dependents: %+v", acts)
	}
}

func TestDecideForeground(t *testing.T) {
	o := deleting(node("d", "d"), FinalizerForeground)
	blocking := node("a", "a", owner("d", true))
	loose := node("b", "b", owner("d", false))
	acts := Decide(o, []Node{blocking, loose}, nil)
	want := []Action{
		{Kind: Delete, Target: blocking.Ref, Policy: metav1.DeletePropagationForeground},
		{Kind: Delete, Target: loose.Ref, Policy: metav1.DeletePropagationBackground},
	}
	if !reflect.DeepEqual(acts, want) {
		t.Fatalf("foreground: %+v, want %+v", acts, want)
	}
	// A blocking dependent already going: wait for it, act on nothing.
	if acts := Decide(o, []Node{deleting(blocking, FinalizerForeground)}, nil); len(acts) != 0 {
		t.Fatalf("waiting for a deleting dependent: %+v", acts)
	}
	// Only non-blocking dependents left: they are deleted and the owner goes.
	acts = Decide(o, []Node{loose}, nil)
	want = []Action{
		{Kind: Delete, Target: loose.Ref, Policy: metav1.DeletePropagationBackground},
		{Kind: RemoveFinalizer, Target: o.Ref, Finalizer: FinalizerForeground},
	}
	if !reflect.DeepEqual(acts, want) {
		t.Fatalf("non-blocking only: %+v, want %+v", acts, want)
	}
	// Deleted without a GC finalizer: nothing for the collector yet.
	if acts := Decide(deleting(node("d", "d"), "example.com/x"), []Node{loose}, nil); len(acts) != 0 {
		t.Fatalf("other finalizer: %+v", acts)
	}
}

func TestGraphTracksOwnersAndDependents(t *testing.T) {
	g := NewGraph()
	a := node("a", "a", owner("d", false))
	if touched := g.Upsert(&a); !reflect.DeepEqual(touched, []types.UID{"d"}) {
		t.Fatalf("upsert touched %v", touched)
	}
	b := node("b", "b", owner("d", false))
	g.Upsert(&b)
	if deps := g.Dependents("d"); len(deps) != 2 || deps[0].UID != "a" || deps[1].UID != "b" {
		t.Fatalf("dependents %v", deps)
	}
	// Re-owning a to e touches both the old and the new owner.
	a2 := node("a", "a", owner("e", false))
	if touched := g.Upsert(&a2); !reflect.DeepEqual(touched, []types.UID{"d", "e"}) {
		t.Fatalf("re-own touched %v", touched)
	}
	if deps := g.Dependents("d"); len(deps) != 1 || deps[0].UID != "b" {
		t.Fatalf("dependents of d after re-own %v", deps)
	}
	d := node("d", "d")
	g.Upsert(&d)
	// Removing an owner touches its dependents.
	if touched := g.Remove("d"); !reflect.DeepEqual(touched, []types.UID{"b"}) {
		t.Fatalf("remove touched %v", touched)
	}
	if _, ok := g.Get("d"); ok {
		t.Fatal("d still in graph")
	}
	if touched := g.Remove("b"); !reflect.DeepEqual(touched, []types.UID{"d"}) {
		t.Fatalf("remove dependent touched %v", touched)
	}
	if deps := g.Dependents("d"); len(deps) != 0 {
		t.Fatalf("dependents of d %v", deps)
	}
}
