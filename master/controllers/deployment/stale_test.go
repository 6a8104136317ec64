package deployment

import (
	"context"
	"errors"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/fakeapi"
)

// TestScaleFromStaleCacheConflicts: a rollout step computed from a stale
// cached ReplicaSet must not overwrite a newer scale (a stale scale-down of
// an old ReplicaSet from 18 to 16 after it had reached 15 would scale it
// back up and let a rollout exceed maxSurge).
func TestScaleFromStaleCacheConflicts(t *testing.T) {
	d := newDeployment(20, "v2", appsv1.RollingUpdateDeploymentStrategyType)
	fifteen := int32(15)
	current := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-old", ResourceVersion: "5"},
		Spec: appsv1.ReplicaSetSpec{Replicas: &fifteen}}
	client := fakeapi.New(d, current)
	// The fake tracker does not check resourceVersions; the API server does.
	client.PrependReactor("update", "replicasets", func(a clienttesting.Action) (bool, runtime.Object, error) {
		rs := a.(clienttesting.UpdateAction).GetObject().(*appsv1.ReplicaSet)
		cur, err := client.Tracker().Get(appsv1.SchemeGroupVersion.WithResource("replicasets"), rs.Namespace, rs.Name)
		if err == nil && cur.(*appsv1.ReplicaSet).ResourceVersion != rs.ResourceVersion {
			return true, nil, apierrors.NewConflict(appsv1.Resource("replicasets"), rs.Name, errors.New("stale"))
		}
		return false, nil, nil
	})
	c := New(client, informers.NewSharedInformerFactory(client, 0), Config{})
	c.recorder = record.NewFakeRecorder(10)
	stale := current.DeepCopy()
	stale.ResourceVersion, stale.Spec.Replicas = "4", new(int32)
	*stale.Spec.Replicas = 18
	s := &step{c: c, d: d, old: []*appsv1.ReplicaSet{stale}}
	ctx := context.Background()
	if err := s.scale(ctx, &s.old[0], 16); !apierrors.IsConflict(err) {
		t.Fatalf("scale from a stale cache: err %v, want a conflict", err)
	}
	got, err := client.AppsV1().ReplicaSets("default").Get(ctx, "web-old", metav1.GetOptions{})
	if err != nil || *got.Spec.Replicas != 15 {
		t.Fatalf("after the stale scale: %v replicas (err %v), want 15 kept", got.Spec.Replicas, err)
	}
	s.old[0] = current
	if err := s.scale(ctx, &s.old[0], 14); err != nil {
		t.Fatalf("scale from the current version: %v", err)
	}
	if got, _ := client.AppsV1().ReplicaSets("default").Get(ctx, "web-old", metav1.GetOptions{}); *got.Spec.Replicas != 14 ||
		got.Annotations[DesiredReplicasAnnotation] != "20" || *s.old[0].Spec.Replicas != 14 || !s.progressed {
		t.Fatalf("after scaling to 14: %+v (slot %d)", got, *s.old[0].Spec.Replicas)
	}
	if *current.Spec.Replicas != 15 {
		t.Fatal("scale modified the cached object")
	}
}
