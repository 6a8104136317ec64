package garbagecollector

import (
	"slices"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Finalizers the API server adds for the Orphan and Foreground policies.
const (
	FinalizerOrphan     = metav1.FinalizerOrphanDependents // "orphan"
	FinalizerForeground = metav1.FinalizerDeleteDependents // "foregroundDeletion"
)

// Ref identifies one object the way an ownerReference names its owner.
type Ref struct {
	APIVersion, Kind, Namespace, Name string
	UID                               types.UID
}

// Node is what the collector knows of one object: its identity and the
// metadata that decides its fate.
type Node struct {
	Ref
	Owners     []metav1.OwnerReference
	Deleting   bool
	Finalizers []string
}

func (n *Node) hasFinalizer(f string) bool { return slices.Contains(n.Finalizers, f) }

// ownerRef returns n's reference to the owner uid.
func (n *Node) ownerRef(uid types.UID) (metav1.OwnerReference, bool) {
	for _, o := range n.Owners {
		if o.UID == uid {
			return o, true
		}
	}
	return metav1.OwnerReference{}, false
}

// Graph holds every watched object and, per owner UID, the UIDs of its
// dependents. Owners need not be present themselves: a dependent may name
// an owner that is gone or not yet seen. Safe for concurrent use.
type Graph struct {
	mu         sync.Mutex
	nodes      map[types.UID]*Node
	dependents map[types.UID]map[types.UID]bool
}

// NewGraph returns an empty graph.
func NewGraph() *Graph {
	return &Graph{nodes: map[types.UID]*Node{}, dependents: map[types.UID]map[types.UID]bool{}}
}

// Upsert records n and returns the owner UIDs affected by the change
// (its previous and current owners), which need a fresh look.
func (g *Graph) Upsert(n *Node) []types.UID {
	g.mu.Lock()
	defer g.mu.Unlock()
	var touched []types.UID
	if old := g.nodes[n.UID]; old != nil {
		touched = g.unlink(old)
	}
	g.nodes[n.UID] = n
	for _, o := range n.Owners {
		if g.dependents[o.UID] == nil {
			g.dependents[o.UID] = map[types.UID]bool{}
		}
		g.dependents[o.UID][n.UID] = true
		touched = append(touched, o.UID)
	}
	return touched
}

// Remove forgets uid and returns the UIDs that need a fresh look: its
// owners (one may wait for it in foreground deletion) and its dependents
// (their owner is gone).
func (g *Graph) Remove(uid types.UID) []types.UID {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.nodes[uid]
	if old == nil {
		return nil
	}
	touched := g.unlink(old)
	delete(g.nodes, uid)
	for d := range g.dependents[uid] {
		touched = append(touched, d)
	}
	return touched
}

func (g *Graph) unlink(n *Node) []types.UID {
	var owners []types.UID
	for _, o := range n.Owners {
		delete(g.dependents[o.UID], n.UID)
		if len(g.dependents[o.UID]) == 0 {
			delete(g.dependents, o.UID)
		}
		owners = append(owners, o.UID)
	}
	return owners
}

// Get returns a copy of the node uid, or false when it is not known.
func (g *Graph) Get(uid types.UID) (Node, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	n, ok := g.nodes[uid]
	if !ok {
		return Node{}, false
	}
	return *n, true
}

// Dependents returns copies of the known dependents of uid.
func (g *Graph) Dependents(uid types.UID) []Node {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Node
	for d := range g.dependents[uid] {
		if n := g.nodes[d]; n != nil {
			out = append(out, *n)
		}
	}
	slices.SortFunc(out, func(a, b Node) int { return cmpUID(a.UID, b.UID) })
	return out
}

func cmpUID(a, b types.UID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ActionKind is what the controller does to the API.
type ActionKind int

// Actions.
const (
	// Delete deletes Target (UID precondition) with Policy.
	Delete ActionKind = iota
	// RemoveOwnerRefs patches Target's ownerReferences to drop Owners.
	RemoveOwnerRefs
	// RemoveFinalizer patches Target's finalizers to drop Finalizer.
	RemoveFinalizer
)

// Action is one change the controller applies.
type Action struct {
	Kind      ActionKind
	Target    Ref
	Policy    metav1.DeletionPropagation
	Owners    []types.UID
	Finalizer string
}

// OwnerState is what is known of an owner a node names.
type OwnerState int

// Owner states.
const (
	// OwnerPresent: the owner exists with the referenced UID.
	OwnerPresent OwnerState = iota
	// OwnerAbsent: a live read found no object with the referenced UID.
	OwnerAbsent
)

// Decide returns the actions for node n given its current dependents and
// the state of each owner it references (by UID; the controller confirms
// absence with a live read before calling). It is pure: the same inputs
// always give the same actions.
func Decide(n Node, dependents []Node, owners map[types.UID]OwnerState) []Action {
	var acts []Action
	if n.Deleting {
		switch {
		case n.hasFinalizer(FinalizerOrphan):
			return orphan(n, dependents)
		case n.hasFinalizer(FinalizerForeground):
			return foreground(n, dependents)
		}
		// Being deleted otherwise: its dependents are handled once it is gone.
		return nil
	}
	if len(n.Owners) == 0 {
		return nil
	}
	var gone []types.UID
	for _, o := range n.Owners {
		if owners[o.UID] == OwnerAbsent {
			gone = append(gone, o.UID)
		}
	}
	switch {
	case len(gone) == 0:
	case len(gone) == len(n.Owners):
		acts = append(acts, Action{Kind: Delete, Target: n.Ref, Policy: metav1.DeletePropagationBackground})
	default:
		// Some owner still lives: only the dangling references go.
		acts = append(acts, Action{Kind: RemoveOwnerRefs, Target: n.Ref, Owners: gone})
	}
	return acts
}

// orphan detaches every dependent from n, then lets n go.
func orphan(n Node, dependents []Node) []Action {
	var acts []Action
	for _, d := range dependents {
		acts = append(acts, Action{Kind: RemoveOwnerRefs, Target: d.Ref, Owners: []types.UID{n.UID}})
	}
	return append(acts, Action{Kind: RemoveFinalizer, Target: n.Ref, Finalizer: FinalizerOrphan})
}

// foreground deletes n's dependents, and lets n go once none that blocks
// its deletion (blockOwnerDeletion) remains.
func foreground(n Node, dependents []Node) []Action {
	var acts []Action
	blocked := false
	for _, d := range dependents {
		ref, _ := d.ownerRef(n.UID)
		blocks := ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion
		if blocks {
			blocked = true
		}
		if d.Deleting {
			continue // already going; wait for it
		}
		policy := metav1.DeletePropagationBackground
		if blocks {
			policy = metav1.DeletePropagationForeground
		}
		acts = append(acts, Action{Kind: Delete, Target: d.Ref, Policy: policy})
	}
	if !blocked {
		acts = append(acts, Action{Kind: RemoveFinalizer, Target: n.Ref, Finalizer: FinalizerForeground})
	}
	return acts
}
