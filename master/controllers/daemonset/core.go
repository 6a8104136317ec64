package daemonset

import (
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
	"github.com/hoist-project/hoist/master/scheduler/framework"
)

// HashLabel marks which template revision a daemon pod runs (upstream's
// controller-revision-hash).
const HashLabel = appsv1.DefaultDaemonSetUniqueLabelKey

// WithDefaultTolerations adds the tolerations upstream gives every daemon
// pod, so daemons keep running on not-ready, unreachable, cordoned or
// pressured nodes.
func WithDefaultTolerations(spec *corev1.PodSpec) {
	add := func(key string, effect corev1.TaintEffect) {
		for _, t := range spec.Tolerations {
			if t.Key == key && t.Effect == effect {
				return
			}
		}
		spec.Tolerations = append(spec.Tolerations, corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: effect})
	}
	add(corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute)
	add(corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute)
	add(corev1.TaintNodeDiskPressure, corev1.TaintEffectNoSchedule)
	add(corev1.TaintNodeMemoryPressure, corev1.TaintEffectNoSchedule)
	add(corev1.TaintNodePIDPressure, corev1.TaintEffectNoSchedule)
	add(corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule)
	if spec.HostNetwork {
		add(corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule)
	}
}

// ShouldRun reports whether a daemon pod of tmpl belongs on node: node
// selector and required affinity match, and every NoSchedule/NoExecute
// taint is tolerated (with the default daemon tolerations).
func ShouldRun(tmpl *corev1.PodTemplateSpec, node *corev1.Node) bool {
	spec := tmpl.Spec.DeepCopy()
	WithDefaultTolerations(spec)
	pod := &corev1.Pod{Spec: *spec}
	if !framework.MatchesNodeSelectorAndAffinity(pod, node) {
		return false
	}
	for i := range node.Spec.Taints {
		t := &node.Spec.Taints[i]
		if t.Effect == corev1.TaintEffectPreferNoSchedule {
			continue
		}
		if !framework.TolerationsTolerateTaint(spec.Tolerations, t) {
			return false
		}
	}
	return true
}

// Plan is one sync's decision.
type Plan struct {
	Create []string // node names
	Delete []*corev1.Pod
	Status appsv1.DaemonSetStatus
}

// Decide computes what to create and delete. nodes is every node;
// podsByNode the set's pods by node (unscheduled ones under ""); hash the
// current template's; scale false while expectations are pending.
func Decide(ds *appsv1.DaemonSet, nodes []*corev1.Node, podsByNode map[string][]*corev1.Pod, hash string, scale bool, now time.Time) Plan {
	var p Plan
	minReady := time.Duration(ds.Spec.MinReadySeconds) * time.Second
	rolling := ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType
	type oldPod struct {
		pod       *corev1.Pod
		available bool
	}
	var old []oldPod
	unavailable := 0
	for _, node := range nodes {
		should := ShouldRun(&ds.Spec.Template, node)
		var active []*corev1.Pod
		for _, pod := range podsByNode[node.Name] {
			switch {
			case pod.Status.Phase == corev1.PodFailed:
				p.Delete = append(p.Delete, pod) // replaced by a fresh one
			case ctrlutil.PodActive(pod):
				active = append(active, pod)
			}
		}
		if should {
			p.Status.DesiredNumberScheduled++
		}
		if !should {
			if len(active) > 0 {
				p.Status.NumberMisscheduled++
				p.Delete = append(p.Delete, active...)
			}
			continue
		}
		if len(active) == 0 {
			p.Create = append(p.Create, node.Name)
			unavailable++
			continue
		}
		sort.Slice(active, func(i, j int) bool { return active[i].CreationTimestamp.Before(&active[j].CreationTimestamp) })
		p.Delete = append(p.Delete, active[1:]...) // one per node: keep the oldest
		pod := active[0]
		p.Status.CurrentNumberScheduled++
		avail, _ := ctrlutil.PodAvailable(pod, minReady, now)
		if ctrlutil.PodReady(pod) {
			p.Status.NumberReady++
		}
		if avail {
			p.Status.NumberAvailable++
		} else {
			unavailable++
		}
		if pod.Labels[HashLabel] == hash {
			p.Status.UpdatedNumberScheduled++
		} else if rolling {
			old = append(old, oldPod{pod, avail})
		}
	}
	// Pods of nodes that left the cluster go too (a DaemonSet follows nodes
	// leaving, without waiting for pod garbage collection).
	known := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		known[n.Name] = true
	}
	for name, pods := range podsByNode {
		if known[name] || name == "" {
			continue
		}
		for _, pod := range pods {
			if pod.DeletionTimestamp == nil {
				p.Delete = append(p.Delete, pod)
			}
		}
	}
	p.Status.NumberUnavailable = p.Status.DesiredNumberScheduled - p.Status.NumberAvailable
	p.Status.ObservedGeneration = ds.Generation
	// Rolling update: old pods that are not available anyway go first;
	// available ones only while fewer than maxUnavailable nodes lack an
	// available daemon.
	maxUnavailable := maxUnavailableOf(ds, int(p.Status.DesiredNumberScheduled))
	sort.SliceStable(old, func(i, j int) bool { return !old[i].available && old[j].available })
	for _, o := range old {
		if o.available {
			if unavailable >= maxUnavailable {
				break
			}
			unavailable++
		}
		p.Delete = append(p.Delete, o.pod)
	}
	if !scale {
		p.Create, p.Delete = nil, nil
	}
	return p
}

// maxUnavailableOf resolves maxUnavailable (default 1; percentages of the
// desired count round up, like upstream) and never returns less than 1.
func maxUnavailableOf(ds *appsv1.DaemonSet, desired int) int {
	v := intstr.FromInt32(1)
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
		v = *ru.MaxUnavailable
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(&v, desired, true)
	if err != nil || n < 1 {
		return 1
	}
	return n
}
