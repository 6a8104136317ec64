package deployment

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition reasons, as upstream (kubectl rollout status reacts to
// ProgressDeadlineExceeded).
const (
	ReasonNewRSAvailable      = "NewReplicaSetAvailable"
	ReasonRSUpdated           = "ReplicaSetUpdated"
	ReasonNewRSCreated        = "NewReplicaSetCreated"
	ReasonFoundNewRS          = "FoundNewReplicaSet"
	ReasonPaused              = "DeploymentPaused"
	ReasonResumed             = "DeploymentResumed"
	ReasonTimedOut            = "ProgressDeadlineExceeded"
	ReasonMinimumAvailable    = "MinimumReplicasAvailable"
	ReasonMinimumUnavailable  = "MinimumReplicasUnavailable"
	defaultProgressDeadline   = 600 * time.Second
	defaultRevisionHistoryLim = 10
)

func desired(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

func getCondition(st *appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// setCondition sets c, keeping lastTransitionTime when the status did not
// change and lastUpdateTime when nothing changed at all.
func setCondition(st *appsv1.DeploymentStatus, c appsv1.DeploymentCondition) {
	if cur := getCondition(st, c.Type); cur != nil {
		if cur.Status == c.Status {
			c.LastTransitionTime = cur.LastTransitionTime
		}
		if cur.Status == c.Status && cur.Reason == c.Reason && cur.Message == c.Message {
			c.LastUpdateTime = cur.LastUpdateTime
		}
		*cur = c
		return
	}
	st.Conditions = append(st.Conditions, c)
}

// CalculateStatus derives the deployment status from its ReplicaSets.
// progressed says this sync scaled or created something; now is the
// clock. It also returns after how long the progress deadline must be
// checked again (0: no need).
func CalculateStatus(d *appsv1.Deployment, newRS *appsv1.ReplicaSet, all []*appsv1.ReplicaSet, maxUnavailable int32, progressed bool, now time.Time) (appsv1.DeploymentStatus, time.Duration) {
	st := *d.Status.DeepCopy()
	st.ObservedGeneration = d.Generation
	st.Replicas, st.ReadyReplicas, st.AvailableReplicas, st.UpdatedReplicas = 0, 0, 0, 0
	var specTotal int32
	for _, rs := range all {
		st.Replicas += rs.Status.Replicas
		st.ReadyReplicas += rs.Status.ReadyReplicas
		st.AvailableReplicas += rs.Status.AvailableReplicas
		if rs.Spec.Replicas != nil {
			specTotal += *rs.Spec.Replicas
		}
	}
	if newRS != nil {
		st.UpdatedReplicas = newRS.Status.Replicas
	}
	st.UnavailableReplicas = max(0, specTotal-st.AvailableReplicas)
	if st.UnavailableReplicas == 0 && specTotal < desired(d) {
		st.UnavailableReplicas = desired(d) - st.AvailableReplicas
	}
	mt := metav1.NewTime(now)
	cond := func(t appsv1.DeploymentConditionType, s corev1.ConditionStatus, reason, msg string) appsv1.DeploymentCondition {
		return appsv1.DeploymentCondition{Type: t, Status: s, Reason: reason, Message: msg, LastUpdateTime: mt, LastTransitionTime: mt}
	}
	if st.AvailableReplicas >= desired(d)-maxUnavailable {
		setCondition(&st, cond(appsv1.DeploymentAvailable, corev1.ConditionTrue, ReasonMinimumAvailable, "Deployment has minimum availability."))
	} else {
		setCondition(&st, cond(appsv1.DeploymentAvailable, corev1.ConditionFalse, ReasonMinimumUnavailable, "Deployment does not have minimum availability."))
	}
	rsName := ""
	if newRS != nil {
		rsName = newRS.Name
	}
	old := d.Status
	complete := newRS != nil && st.UpdatedReplicas == desired(d) && st.Replicas == desired(d) && st.AvailableReplicas == desired(d)
	countsMoved := old.Replicas != st.Replicas || old.UpdatedReplicas != st.UpdatedReplicas || old.AvailableReplicas != st.AvailableReplicas || old.ReadyReplicas != st.ReadyReplicas
	deadline := defaultProgressDeadline
	if d.Spec.ProgressDeadlineSeconds != nil {
		deadline = time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second
	}
	var recheck time.Duration
	switch cur := getCondition(&st, appsv1.DeploymentProgressing); {
	case d.Spec.Paused:
		setCondition(&st, cond(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonPaused, "Deployment is paused"))
	case complete:
		setCondition(&st, cond(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewRSAvailable, fmt.Sprintf("ReplicaSet %q has successfully progressed.", rsName)))
	case progressed || countsMoved || cur == nil || cur.Reason == ReasonPaused || cur.Reason == ReasonNewRSAvailable:
		c := cond(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonRSUpdated, fmt.Sprintf("ReplicaSet %q is progressing.", rsName))
		setCondition(&st, c)
		// Progress always renews the deadline.
		getCondition(&st, appsv1.DeploymentProgressing).LastUpdateTime = mt
		recheck = deadline
	case cur.Reason != ReasonTimedOut:
		left := cur.LastUpdateTime.Add(deadline).Sub(now)
		if left <= 0 {
			setCondition(&st, cond(appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonTimedOut, fmt.Sprintf("ReplicaSet %q has timed out progressing.", rsName)))
		} else {
			recheck = left
		}
	}
	return st, recheck
}
