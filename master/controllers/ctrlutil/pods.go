package ctrlutil

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// PodActive reports a pod that counts toward replicas: not finished and
// not being deleted.
func PodActive(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

// PodReadyCondition returns the pod's Ready condition, or nil.
func PodReadyCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// PodReady reports the Ready condition is True.
func PodReady(p *corev1.Pod) bool {
	c := PodReadyCondition(p)
	return c != nil && c.Status == corev1.ConditionTrue
}

// PodAvailable reports a pod ready for at least minReady at now; if not yet,
// wait says how long until it will be (0 when it never will on its own).
func PodAvailable(p *corev1.Pod, minReady time.Duration, now time.Time) (ok bool, wait time.Duration) {
	c := PodReadyCondition(p)
	if c == nil || c.Status != corev1.ConditionTrue {
		return false, 0
	}
	if minReady == 0 {
		return true, 0
	}
	at := c.LastTransitionTime.Add(minReady)
	if !now.Before(at) {
		return true, 0
	}
	return false, at.Sub(now)
}
