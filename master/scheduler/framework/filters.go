package framework

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// Reasons a node does not fit, worded like upstream kube-scheduler so that
// FailedScheduling events read the same.
const (
	ReasonUnschedulable    = "node(s) were unschedulable"
	ReasonNotReady         = "node(s) were not ready"
	ReasonNodeName         = "node(s) didn't match the requested node name"
	ReasonNodeAffinity     = "node(s) didn't match Pod's node affinity/selector"
	ReasonPorts            = "node(s) didn't have free ports for the requested pod ports"
	ReasonTooManyPods      = "Too many pods"
	ReasonAntiAffinity     = "node(s) didn't match pod anti-affinity rules"
	ReasonExistingAntiAff  = "node(s) didn't satisfy existing pods anti-affinity rules"
	reasonInsufficientFmt  = "Insufficient %s"
	reasonUntoleratedTaint = "node(s) had untolerated taint {%s: %s}"
)

// Filter returns the reasons pod cannot run on ni; none means it fits.
type Filter func(pod *corev1.Pod, ni *NodeInfo, st *CycleState) []string

// Filters in upstream's plugin order; a node is rejected by the first
// filter that fails.
func Filters() []Filter {
	return []Filter{
		FilterUnschedulable, FilterNodeName, FilterTaints, FilterReady,
		FilterNodeAffinity, FilterPorts, FilterResources, FilterAntiAffinity,
	}
}

// RunFilters runs fs in order and returns the first failure's reasons.
func RunFilters(fs []Filter, pod *corev1.Pod, ni *NodeInfo, st *CycleState) []string {
	for _, f := range fs {
		if r := f(pod, ni, st); len(r) > 0 {
			return r
		}
	}
	return nil
}

// FilterUnschedulable rejects cordoned nodes unless the pod tolerates the
// node.kubernetes.io/unschedulable:NoSchedule taint.
func FilterUnschedulable(pod *corev1.Pod, ni *NodeInfo, _ *CycleState) []string {
	if !ni.Node.Spec.Unschedulable {
		return nil
	}
	t := corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}
	if TolerationsTolerateTaint(pod.Spec.Tolerations, &t) {
		return nil
	}
	return []string{ReasonUnschedulable}
}

// FilterNodeName rejects nodes other than spec.nodeName when it is set.
func FilterNodeName(pod *corev1.Pod, ni *NodeInfo, _ *CycleState) []string {
	if pod.Spec.NodeName != "" && pod.Spec.NodeName != ni.Node.Name {
		return []string{ReasonNodeName}
	}
	return nil
}

// FilterTaints rejects a node with a NoSchedule or NoExecute taint the pod
// does not tolerate.
func FilterTaints(pod *corev1.Pod, ni *NodeInfo, _ *CycleState) []string {
	for i := range ni.Node.Spec.Taints {
		t := &ni.Node.Spec.Taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if !TolerationsTolerateTaint(pod.Spec.Tolerations, t) {
			return []string{fmt.Sprintf(reasonUntoleratedTaint, t.Key, t.Value)}
		}
	}
	return nil
}

// NodeReady reports the node's Ready condition is True.
func NodeReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// FilterReady rejects a node whose Ready condition is not True, unless the
// pod tolerates the not-ready (or, for Unknown, unreachable) taint — the
// same pods the node lifecycle controller would leave there.
func FilterReady(pod *corev1.Pod, ni *NodeInfo, _ *CycleState) []string {
	if NodeReady(ni.Node) {
		return nil
	}
	for _, key := range []string{corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable} {
		t := corev1.Taint{Key: key, Effect: corev1.TaintEffectNoSchedule}
		if TolerationsTolerateTaint(pod.Spec.Tolerations, &t) {
			return nil
		}
	}
	return []string{ReasonNotReady}
}

// FilterNodeAffinity checks nodeSelector and required node affinity.
func FilterNodeAffinity(pod *corev1.Pod, ni *NodeInfo, _ *CycleState) []string {
	if MatchesNodeSelectorAndAffinity(pod, ni.Node) {
		return nil
	}
	return []string{ReasonNodeAffinity}
}

// FilterPorts rejects a node where a requested host port is taken.
func FilterPorts(pod *corev1.Pod, ni *NodeInfo, _ *CycleState) []string {
	if ni.portConflict(pod) {
		return []string{ReasonPorts}
	}
	return nil
}

// FilterResources compares requests plus what is already requested on the
// node with allocatable; it reports every resource that is short.
func FilterResources(pod *corev1.Pod, ni *NodeInfo, st *CycleState) []string {
	var reasons []string
	if ni.Requested.Pods+1 > ni.Allocatable.Pods {
		reasons = append(reasons, ReasonTooManyPods)
	}
	req := st.requests(pod)
	check := func(want, used, have int64, name corev1.ResourceName) {
		if want > 0 && used+want > have {
			reasons = append(reasons, fmt.Sprintf(reasonInsufficientFmt, name))
		}
	}
	check(req.MilliCPU, ni.Requested.MilliCPU, ni.Allocatable.MilliCPU, corev1.ResourceCPU)
	check(req.Memory, ni.Requested.Memory, ni.Allocatable.Memory, corev1.ResourceMemory)
	check(req.EphemeralStorage, ni.Requested.EphemeralStorage, ni.Allocatable.EphemeralStorage, corev1.ResourceEphemeralStorage)
	return reasons
}
