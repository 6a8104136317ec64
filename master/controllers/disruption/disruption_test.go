package disruption

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrltest"
	"github.com/hoist-project/hoist/master/controllers/fakeapi"
	"github.com/hoist-project/hoist/master/disruptionbudget"
)

func pod(name string, ready, terminating bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID(name), Labels: map[string]string{"app": "web"}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}
	if terminating {
		now := metav1.Now()
		p.DeletionTimestamp = &now
	}
	return p
}

func budget(minAvailable, maxUnavailable *intstr.IntOrString) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", Generation: 3},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: minAvailable, MaxUnavailable: maxUnavailable,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}
}

func ptr(v intstr.IntOrString) *intstr.IntOrString { return &v }

func TestStatus(t *testing.T) {
	now := time.Now()
	pods := []*corev1.Pod{pod("a", true, false), pod("b", true, false), pod("c", true, false), pod("d", false, false), pod("e", true, true)}
	for _, tc := range []struct {
		name                                string
		pdb                                 *policyv1.PodDisruptionBudget
		expected, healthy, desired, allowed int32
	}{
		{"minAvailable 2", budget(ptr(intstr.FromInt32(2)), nil), 4, 3, 2, 1},
		{"minAvailable 50% rounds up", budget(ptr(intstr.FromString("50%")), nil), 4, 3, 2, 1},
		{"minAvailable 100%", budget(ptr(intstr.FromString("100%")), nil), 4, 3, 4, 0},
		{"maxUnavailable 1", budget(nil, ptr(intstr.FromInt32(1))), 4, 3, 3, 0},
		{"maxUnavailable 30% rounds up", budget(nil, ptr(intstr.FromString("30%"))), 4, 3, 2, 1},
		{"maxUnavailable 0", budget(nil, ptr(intstr.FromInt32(0))), 4, 3, 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := disruptionbudget.Status(tc.pdb, pods, now)
			got := fmt.Sprint(st.ExpectedPods, st.CurrentHealthy, st.DesiredHealthy, st.DisruptionsAllowed)
			if want := fmt.Sprint(tc.expected, tc.healthy, tc.desired, tc.allowed); got != want {
				t.Fatalf("expected/healthy/desired/allowed = %s, want %s", got, want)
			}
			c := st.Conditions[0]
			if (c.Status == metav1.ConditionTrue) != (tc.allowed > 0) || st.ObservedGeneration != 3 {
				t.Fatalf("condition %+v, observedGeneration %d", c, st.ObservedGeneration)
			}
		})
	}
}

func TestStatusDisruptedPods(t *testing.T) {
	now := time.Now()
	pdb := budget(ptr(intstr.FromInt32(1)), nil)
	pdb.Status.DisruptedPods = map[string]metav1.Time{
		"a":    metav1.NewTime(now.Add(-time.Minute)),     // recent: not healthy
		"b":    metav1.NewTime(now.Add(-3 * time.Minute)), // expired: healthy again
		"gone": metav1.NewTime(now),                       // no such pod: dropped
	}
	st := disruptionbudget.Status(pdb, []*corev1.Pod{pod("a", true, false), pod("b", true, false)}, now)
	if st.CurrentHealthy != 1 || st.DisruptionsAllowed != 0 || len(st.DisruptedPods) != 1 || st.DisruptedPods["a"].Time.IsZero() {
		t.Fatalf("status %+v", st)
	}
	// The condition keeps its transition time while its status holds.
	first := disruptionbudget.Status(pdb, nil, now)
	pdb.Status = first
	if again := disruptionbudget.Status(pdb, nil, now.Add(time.Hour)); !again.Conditions[0].LastTransitionTime.Equal(&first.Conditions[0].LastTransitionTime) || disruptionbudget.Changed(first, again) {
		t.Fatalf("status changed without a change: %+v → %+v", first, again)
	}
}

func TestControllerWritesStatus(t *testing.T) {
	client := fakeapi.New(budget(ptr(intstr.FromInt32(1)), nil), pod("a", true, false), pod("b", true, false))
	ctrltest.Start(t, client, func(f informers.SharedInformerFactory) ctrltest.Runner { return New(client, f, Config{}) })
	ctx := context.Background()
	get := func() policyv1.PodDisruptionBudgetStatus {
		p, err := client.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p.Status
	}
	ctrltest.WaitFor(t, "disruptionsAllowed 1", func() bool { s := get(); return s.ExpectedPods == 2 && s.DisruptionsAllowed == 1 })
	if _, err := client.CoreV1().Pods("default").UpdateStatus(ctx, pod("b", false, false), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ctrltest.WaitFor(t, "disruptionsAllowed 0 after a pod went unready", func() bool {
		s := get()
		return s.CurrentHealthy == 1 && s.DisruptionsAllowed == 0 && s.Conditions[0].Reason == policyv1.InsufficientPodsReason
	})
}
