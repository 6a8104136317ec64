package replicaset

import (
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
)

// Plan is what one sync should do: the pure decision, applied by the
// controller.
type Plan struct {
	Create int
	Delete []*corev1.Pod
	Status Status
	// Requeue asks for another sync after this long (a pod becomes
	// available after minReadySeconds); 0 means none.
	Requeue time.Duration
}

// Decide computes the plan for set given the pods it owns (after
// adoption/release). scale is false while expectations are pending.
func Decide(set *Set, owned []*corev1.Pod, scale bool, now time.Time) Plan {
	var p Plan
	active := make([]*corev1.Pod, 0, len(owned))
	tmplLabels := labels.Set(set.Template.Labels)
	minReady := time.Duration(set.MinReadySeconds) * time.Second
	for _, pod := range owned {
		if !ctrlutil.PodActive(pod) {
			continue
		}
		active = append(active, pod)
		if labels.SelectorFromSet(tmplLabels).Matches(labels.Set(pod.Labels)) {
			p.Status.FullyLabeledReplicas++
		}
		if ctrlutil.PodReady(pod) {
			p.Status.ReadyReplicas++
		}
		ok, wait := ctrlutil.PodAvailable(pod, minReady, now)
		if ok {
			p.Status.AvailableReplicas++
		} else if wait > 0 && (p.Requeue == 0 || wait < p.Requeue) {
			p.Requeue = wait
		}
	}
	p.Status.Replicas = int32(len(active))
	p.Status.ObservedGeneration = set.Meta.GetGeneration()
	if !scale || set.Meta.GetDeletionTimestamp() != nil {
		return p
	}
	diff := len(active) - int(set.Replicas)
	switch {
	case diff < 0:
		p.Create = -diff
	case diff > 0:
		p.Delete = deletionOrder(active)[:diff]
	}
	return p
}

// deletionOrder sorts pods cheapest-to-delete first, like upstream's
// ActivePods ordering: unscheduled before scheduled, pending before
// unknown before running, not ready before ready, ready for less time
// before longer, more restarts before fewer, newer before older.
func deletionOrder(pods []*corev1.Pod) []*corev1.Pod {
	out := append([]*corev1.Pod(nil), pods...)
	phaseRank := map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}
	restarts := func(p *corev1.Pod) int32 {
		var n int32
		for _, c := range p.Status.ContainerStatuses {
			n += c.RestartCount
		}
		return n
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
			return a.Spec.NodeName == ""
		}
		if phaseRank[a.Status.Phase] != phaseRank[b.Status.Phase] {
			return phaseRank[a.Status.Phase] < phaseRank[b.Status.Phase]
		}
		ra, rb := ctrlutil.PodReady(a), ctrlutil.PodReady(b)
		if ra != rb {
			return !ra
		}
		if ra {
			ta, tb := ctrlutil.PodReadyCondition(a).LastTransitionTime, ctrlutil.PodReadyCondition(b).LastTransitionTime
			if !ta.Equal(&tb) {
				return tb.Before(&ta)
			}
		}
		if x, y := restarts(a), restarts(b); x != y {
			return x > y
		}
		return b.CreationTimestamp.Before(&a.CreationTimestamp)
	})
	return out
}
