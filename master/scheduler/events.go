package scheduler

import (
	"context"
	"encoding/json"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hoist-project/hoist/master/scheduler/framework"
)

// unschedulable reports a failed attempt like upstream: a FailedScheduling
// warning event and the PodScheduled=False condition (reason
// Unschedulable), written only when the message changed.
func (s *Scheduler) unschedulable(ctx context.Context, pod *corev1.Pod, msg string) {
	s.recorder.Event(pod, corev1.EventTypeWarning, "FailedScheduling", msg)
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Message == msg {
			return
		}
	}
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.PodCondition{{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: msg, LastTransitionTime: metav1.NewTime(s.cfg.Now()),
	}}}})
	_, err := s.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil && ctx.Err() == nil {
		slog.Warn("cannot set PodScheduled condition", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
}

// schedulingInputChanged ignores status and resourceVersion churn, so an
// unschedulable pod is not retried because its own condition was written.
func schedulingInputChanged(old, cur *corev1.Pod) bool {
	return !equality.Semantic.DeepEqual(old.Spec, cur.Spec) ||
		!equality.Semantic.DeepEqual(old.Labels, cur.Labels) ||
		!equality.Semantic.DeepEqual(old.Annotations, cur.Annotations)
}

// nodeSchedulingChanged reports changes that can make a pod fit: not
// heartbeat-only status updates.
func nodeSchedulingChanged(old, cur *corev1.Node) bool {
	return old.Spec.Unschedulable != cur.Spec.Unschedulable ||
		!equality.Semantic.DeepEqual(old.Spec.Taints, cur.Spec.Taints) ||
		!equality.Semantic.DeepEqual(old.Labels, cur.Labels) ||
		!equality.Semantic.DeepEqual(old.Status.Allocatable, cur.Status.Allocatable) ||
		framework.NodeReady(old) != framework.NodeReady(cur)
}
