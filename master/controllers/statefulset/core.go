package statefulset

import (
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
)

// Labels upstream puts on StatefulSet pods.
const (
	PodNameLabel  = appsv1.StatefulSetPodNameLabel // statefulset.kubernetes.io/pod-name
	PodIndexLabel = appsv1.PodIndexLabel           // apps.kubernetes.io/pod-index
	RevisionLabel = appsv1.ControllerRevisionHashLabelKey
)

// Ordinal parses the ordinal from a pod name <set>-<n>, or -1.
func Ordinal(set, pod string) int {
	rest, ok := strings.CutPrefix(pod, set+"-")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || strconv.Itoa(n) != rest {
		return -1
	}
	return n
}

// PodName is the stable name of ordinal n.
func PodName(set string, n int) string { return set + "-" + strconv.Itoa(n) }

// Plan is one sync's decision.
type Plan struct {
	Create []int
	Delete []*corev1.Pod
	Status appsv1.StatefulSetStatus
}

func runningAndReady(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && ctrlutil.PodReady(p) && p.DeletionTimestamp == nil
}

// Decide computes the next actions. pods maps ordinal to the set's pod;
// revision is the current template's revision label value. OrderedReady
// creates ordinals in order, each only once the lower ones are Running and
// Ready, deletes from the highest ordinal one at a time, and replaces pods
// of an old revision from the highest ordinal down to the partition, one
// at a time. Parallel creates and deletes without waiting (updates still
// go one at a time, like upstream's RollingUpdate).
func Decide(set *appsv1.StatefulSet, pods map[int]*corev1.Pod, revision string, scale bool) Plan {
	var p Plan
	replicas := 1
	if set.Spec.Replicas != nil {
		replicas = int(*set.Spec.Replicas)
	}
	parallel := set.Spec.PodManagementPolicy == appsv1.ParallelPodManagement
	st := &p.Status
	st.ObservedGeneration = set.Generation
	st.UpdateRevision = revision
	st.CurrentRevision = set.Status.CurrentRevision
	if st.CurrentRevision == "" {
		st.CurrentRevision = revision
	}
	maxOrd := -1
	for ord, pod := range pods {
		maxOrd = max(maxOrd, ord)
		if pod.DeletionTimestamp != nil {
			continue
		}
		st.Replicas++
		if ctrlutil.PodReady(pod) {
			st.ReadyReplicas++
			st.AvailableReplicas++
		}
		if pod.Labels[RevisionLabel] == revision {
			st.UpdatedReplicas++
		}
		if pod.Labels[RevisionLabel] == st.CurrentRevision {
			st.CurrentReplicas++
		}
	}
	if st.UpdatedReplicas == int32(replicas) && st.Replicas == int32(replicas) && st.ReadyReplicas == int32(replicas) {
		st.CurrentRevision, st.CurrentReplicas = revision, st.UpdatedReplicas
	}
	if !scale {
		return p
	}
	// Failed pods are recreated under the same name.
	for _, pod := range pods {
		if pod.Status.Phase == corev1.PodFailed && pod.DeletionTimestamp == nil {
			p.Delete = append(p.Delete, pod)
		}
	}
	if len(p.Delete) > 0 && !parallel {
		return p
	}
	allReady := true
	for ord := 0; ord < replicas; ord++ {
		pod, ok := pods[ord]
		if !ok {
			p.Create = append(p.Create, ord)
			if !parallel {
				return p
			}
			allReady = false
			continue
		}
		if !runningAndReady(pod) {
			allReady = false
			if !parallel {
				return p
			}
		}
	}
	// Condemned ordinals, highest first.
	for ord := maxOrd; ord >= replicas; ord-- {
		pod, ok := pods[ord]
		if !ok {
			continue
		}
		if pod.DeletionTimestamp != nil {
			if !parallel {
				return p
			}
			continue
		}
		p.Delete = append(p.Delete, pod)
		if !parallel {
			return p
		}
	}
	if !allReady || len(p.Delete) > 0 || len(p.Create) > 0 || set.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return p
	}
	partition := 0
	if ru := set.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		partition = int(*ru.Partition)
	}
	for ord := replicas - 1; ord >= partition; ord-- {
		if pod := pods[ord]; pod != nil && pod.Labels[RevisionLabel] != revision {
			p.Delete = append(p.Delete, pod)
			return p
		}
	}
	return p
}
