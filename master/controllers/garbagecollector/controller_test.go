package garbagecollector

import (
	"context"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrltest"
	"github.com/hoist-project/hoist/master/controllers/fakeapi"
)

var (
	deployments = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	replicasets = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}
)

func obj(kind, name, uid string, owners ...metav1.OwnerReference) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("apps/v1")
	u.SetKind(kind)
	u.SetNamespace("ns")
	u.SetName(name)
	u.SetUID(types.UID(uid))
	u.SetOwnerReferences(owners)
	return u
}

func deploymentOwner(name, uid string, block bool) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name, UID: types.UID(uid), BlockOwnerDeletion: &block}
}

func beingDeleted(u *unstructured.Unstructured, finalizers ...string) *unstructured.Unstructured {
	now := metav1.Now()
	u.SetDeletionTimestamp(&now)
	u.SetFinalizers(finalizers)
	return u
}

// start runs a collector over a fake API serving deployments and
// replicasets that holds objs.
func start(t *testing.T, objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	t.Helper()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{deployments: "DeploymentList", replicasets: "ReplicaSetList"}, objs...)
	client := fakeapi.New()
	client.Resources = []*metav1.APIResourceList{{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{
		{Name: "deployments", Kind: "Deployment", Namespaced: true, Verbs: []string{"list", "watch", "delete", "get", "patch"}},
		{Name: "replicasets", Kind: "ReplicaSet", Namespaced: true, Verbs: []string{"list", "watch", "delete", "get", "patch"}},
		{Name: "replicasets/status", Kind: "ReplicaSet", Namespaced: true, Verbs: []string{"get"}},
	}}}
	gc, err := New(client, Config{Dynamic: dyn})
	if err != nil {
		t.Fatal(err)
	}
	ctrltest.Start(t, client, func(informers.SharedInformerFactory) ctrltest.Runner { return gc })
	return dyn
}

func get(dyn *dynamicfake.FakeDynamicClient, gvr schema.GroupVersionResource, name string) (*unstructured.Unstructured, bool) {
	u, err := dyn.Resource(gvr).Namespace("ns").Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false
	}
	return u, err == nil
}

func TestBackgroundDeletesOrphanedDependents(t *testing.T) {
	dyn := start(t,
		obj("Deployment", "live", "d1"),
		obj("ReplicaSet", "kept", "r1", deploymentOwner("live", "d1", true)),
		obj("ReplicaSet", "gone-owner", "r2", deploymentOwner("gone", "d2", true)),
		// Same name as a live owner but another UID: the owner it meant is gone.
		obj("ReplicaSet", "stale-uid", "r3", deploymentOwner("live", "d-old", true)),
	)
	ctrltest.WaitFor(t, "dependents of gone owners deleted", func() bool {
		_, a := get(dyn, replicasets, "gone-owner")
		_, b := get(dyn, replicasets, "stale-uid")
		return !a && !b
	})
	if _, ok := get(dyn, replicasets, "kept"); !ok {
		t.Fatal("dependent of a live owner deleted")
	}
	// Deleting the owner now makes its dependent garbage.
	if err := dyn.Resource(deployments).Namespace("ns").Delete(context.Background(), "live", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ctrltest.WaitFor(t, "dependent of the deleted owner deleted", func() bool {
		_, ok := get(dyn, replicasets, "kept")
		return !ok
	})
}

func TestOrphanDetachesDependents(t *testing.T) {
	dyn := start(t,
		beingDeleted(obj("Deployment", "d", "d1"), FinalizerOrphan),
		obj("ReplicaSet", "a", "r1", deploymentOwner("d", "d1", true)),
		obj("ReplicaSet", "b", "r2", deploymentOwner("d", "d1", false), deploymentOwner("other", "d9", false)),
		obj("Deployment", "other", "d9"),
	)
	ctrltest.WaitFor(t, "orphan finalizer removed", func() bool {
		d, ok := get(dyn, deployments, "d")
		return ok && len(d.GetFinalizers()) == 0
	})
	a, okA := get(dyn, replicasets, "a")
	b, okB := get(dyn, replicasets, "b")
	if !okA || !okB {
		t.Fatal("orphaned dependents deleted")
	}
	if len(a.GetOwnerReferences()) != 0 {
		t.Fatalf("a still owned: %v", a.GetOwnerReferences())
	}
	if refs := b.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != "d9" {
		t.Fatalf("b owners: %v, want only the other owner", refs)
	}
}

func TestForegroundDeletesDependentsFirst(t *testing.T) {
	dyn := start(t,
		beingDeleted(obj("Deployment", "d", "d1"), FinalizerForeground),
		obj("ReplicaSet", "a", "r1", deploymentOwner("d", "d1", true)),
		obj("ReplicaSet", "b", "r2", deploymentOwner("d", "d1", false)),
	)
	ctrltest.WaitFor(t, "foreground finalizer removed after dependents went", func() bool {
		d, ok := get(dyn, deployments, "d")
		_, a := get(dyn, replicasets, "a")
		_, b := get(dyn, replicasets, "b")
		return ok && len(d.GetFinalizers()) == 0 && !a && !b
	})
}

// TestNewNeedsAConnection: a typed client that is not a real clientset
// gives no connection to build the dynamic client on.
func TestNewNeedsAConnection(t *testing.T) {
	if _, err := New(fake.NewSimpleClientset(), Config{}); err == nil {
		t.Fatal("New without a dynamic client or a real clientset succeeded")
	}
}

// TestStaleGraphReferenceDoesNotDelete: the graph still holds an owner
// reference the dependent no longer has (watches of different kinds are
// not ordered: an Orphan deletion detaches the ReplicaSet, then its
// Deployment goes, and the Deployment's deletion arrives first). The
// owner is gone, but the dependent must be judged by its live references
// and kept.
func TestStaleGraphReferenceDoesNotDelete(t *testing.T) {
	detached := obj("ReplicaSet", "orphaned", "r1")
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{deployments: "DeploymentList", replicasets: "ReplicaSetList"}, detached)
	c := &Controller{dynamic: dyn, graph: NewGraph(), kinds: kindIndex([]resource{
		{GVR: deployments, Kind: "Deployment", Namespaced: true},
		{GVR: replicasets, Kind: "ReplicaSet", Namespaced: true},
	})}
	stale := Node{Ref: Ref{APIVersion: "apps/v1", Kind: "ReplicaSet", Namespace: "ns", Name: "orphaned", UID: "r1"},
		Owners: []metav1.OwnerReference{deploymentOwner("d", "d1", true)}}
	c.graph.Upsert(&stale)
	if err := c.sync(context.Background(), "r1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := get(dyn, replicasets, "orphaned"); !ok {
		t.Fatal("a dependent detached from its deleted owner was deleted on the graph's stale owner reference")
	}

	// Still owned by the gone Deployment in the API too: garbage.
	owned := obj("ReplicaSet", "owned", "r2", deploymentOwner("d", "d1", true))
	if _, err := dyn.Resource(replicasets).Namespace("ns").Create(context.Background(), owned, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	n := Node{Ref: Ref{APIVersion: "apps/v1", Kind: "ReplicaSet", Namespace: "ns", Name: "owned", UID: "r2"}, Owners: owned.GetOwnerReferences()}
	c.graph.Upsert(&n)
	if err := c.sync(context.Background(), "r2"); err != nil {
		t.Fatal(err)
	}
	if _, ok := get(dyn, replicasets, "owned"); ok {
		t.Fatal("a dependent whose owner is gone in the API too was kept")
	}
}
