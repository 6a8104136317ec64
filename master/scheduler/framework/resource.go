// Package framework holds the scheduler's pure decision logic: a per-node
// view of the cluster (NodeInfo), filter functions that say why a pod does
// not fit a node, and score functions that rank the nodes that fit. Nothing
// here talks to the API server, so every rule is testable with plain structs.
package framework

import (
	corev1 "k8s.io/api/core/v1"
)

// Resource is an amount of the resources the scheduler accounts for.
type Resource struct {
	MilliCPU         int64
	Memory           int64
	EphemeralStorage int64
	Pods             int64
}

// Add adds r2 to r.
func (r *Resource) Add(r2 Resource) {
	r.MilliCPU += r2.MilliCPU
	r.Memory += r2.Memory
	r.EphemeralStorage += r2.EphemeralStorage
	r.Pods += r2.Pods
}

// Sub subtracts r2 from r.
func (r *Resource) Sub(r2 Resource) {
	r.MilliCPU -= r2.MilliCPU
	r.Memory -= r2.Memory
	r.EphemeralStorage -= r2.EphemeralStorage
	r.Pods -= r2.Pods
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// fromList reads cpu, memory and ephemeral-storage out of a ResourceList.
func fromList(l corev1.ResourceList) Resource {
	var r Resource
	if q, ok := l[corev1.ResourceCPU]; ok {
		r.MilliCPU = q.MilliValue()
	}
	if q, ok := l[corev1.ResourceMemory]; ok {
		r.Memory = q.Value()
	}
	if q, ok := l[corev1.ResourceEphemeralStorage]; ok {
		r.EphemeralStorage = q.Value()
	}
	if q, ok := l[corev1.ResourcePods]; ok {
		r.Pods = q.Value()
	}
	return r
}

// PodRequests is what a pod asks for, computed like upstream: the sum over
// app containers, raised to the largest init container's request (init
// containers run one at a time before the app containers), plus the pod
// overhead. Pods counts as 1.
func PodRequests(pod *corev1.Pod) Resource {
	var sum Resource
	for i := range pod.Spec.Containers {
		sum.Add(fromList(pod.Spec.Containers[i].Resources.Requests))
	}
	for i := range pod.Spec.InitContainers {
		c := fromList(pod.Spec.InitContainers[i].Resources.Requests)
		sum.MilliCPU = max64(sum.MilliCPU, c.MilliCPU)
		sum.Memory = max64(sum.Memory, c.Memory)
		sum.EphemeralStorage = max64(sum.EphemeralStorage, c.EphemeralStorage)
	}
	sum.Add(fromList(pod.Spec.Overhead))
	sum.Pods = 1
	return sum
}

// Defaults used for scoring only, so pods without requests still spread
// (upstream's DefaultMilliCPURequest / DefaultMemoryRequest).
const (
	DefaultMilliCPURequest = 100
	DefaultMemoryRequest   = 200 * 1024 * 1024
)

// NonZeroRequests is PodRequests with zero cpu/memory replaced by the
// scoring defaults.
func NonZeroRequests(r Resource) Resource {
	if r.MilliCPU == 0 {
		r.MilliCPU = DefaultMilliCPURequest
	}
	if r.Memory == 0 {
		r.Memory = DefaultMemoryRequest
	}
	return r
}

// NodeAllocatable is what a node offers to pods.
func NodeAllocatable(node *corev1.Node) Resource {
	l := node.Status.Allocatable
	if len(l) == 0 {
		l = node.Status.Capacity
	}
	return fromList(l)
}
