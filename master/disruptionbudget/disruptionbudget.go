// Package disruptionbudget is the PodDisruptionBudget arithmetic shared by
// the eviction API (which spends a budget) and the disruption controller
// (which writes its status), so both count pods the same way.
package disruptionbudget

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// DisruptedPodTTL is how long an eviction recorded in status.disruptedPods
// counts against a budget when the pod did not go away (the API server's
// eviction API uses the same).
const DisruptedPodTTL = 2 * time.Minute

// Status computes a budget's status from the pods its selector matches,
// the way the eviction API counts them: expected = pods not terminating;
// healthy = those Running and Ready that are not in disruptedPods (an
// eviction accepted less than DisruptedPodTTL ago); desired from
// minAvailable or maxUnavailable (percentages of expected, rounded up).
// Entries of disruptedPods for pods that are gone, terminating or expired
// are dropped.
func Status(pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod, now time.Time) policyv1.PodDisruptionBudgetStatus {
	st := policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation}
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		st.ExpectedPods++
		if t, ok := pdb.Status.DisruptedPods[p.Name]; ok && now.Sub(t.Time) < DisruptedPodTTL {
			if st.DisruptedPods == nil {
				st.DisruptedPods = map[string]metav1.Time{}
			}
			st.DisruptedPods[p.Name] = t
			continue
		}
		if podReady(p) {
			st.CurrentHealthy++
		}
	}
	st.DesiredHealthy = desiredHealthy(pdb, st.ExpectedPods)
	st.DisruptionsAllowed = max(st.CurrentHealthy-st.DesiredHealthy, 0)
	cond := metav1.Condition{Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionTrue,
		Reason: policyv1.SufficientPodsReason, ObservedGeneration: pdb.Generation, LastTransitionTime: metav1.NewTime(now)}
	if st.DisruptionsAllowed == 0 {
		cond.Status, cond.Reason = metav1.ConditionFalse, policyv1.InsufficientPodsReason
	}
	for _, old := range pdb.Status.Conditions {
		if old.Type == cond.Type && old.Status == cond.Status {
			cond.LastTransitionTime = old.LastTransitionTime
		}
	}
	st.Conditions = []metav1.Condition{cond}
	return st
}

// Changed reports whether the computed status differs from the stored one.
func Changed(old, computed policyv1.PodDisruptionBudgetStatus) bool {
	return !apiequality.Semantic.DeepEqual(old, computed)
}

func desiredHealthy(pdb *policyv1.PodDisruptionBudget, expected int32) int32 {
	if v := pdb.Spec.MinAvailable; v != nil {
		n, _ := intstr.GetScaledValueFromIntOrPercent(v, int(expected), true)
		return int32(n)
	}
	if v := pdb.Spec.MaxUnavailable; v != nil {
		n, _ := intstr.GetScaledValueFromIntOrPercent(v, int(expected), true)
		return max(expected-int32(n), 0)
	}
	return 0
}

// Healthy reports whether pod counts towards the budget's currentHealthy:
// not terminating, Running and Ready, and not evicted in the last
// DisruptedPodTTL.
func Healthy(pdb *policyv1.PodDisruptionBudget, pod *corev1.Pod, now time.Time) bool {
	if pod.DeletionTimestamp != nil {
		return false
	}
	if t, ok := pdb.Status.DisruptedPods[pod.Name]; ok && now.Sub(t.Time) < DisruptedPodTTL {
		return false
	}
	return podReady(pod)
}

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
