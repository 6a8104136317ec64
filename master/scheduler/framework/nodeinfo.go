package framework

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// NodeInfo is the scheduler's incrementally maintained view of one node:
// the node object, the pods on it and precomputed totals, so a filter never
// walks the node's pods to add up requests.
type NodeInfo struct {
	Node        *corev1.Node
	Allocatable Resource
	// Requested is the sum of PodRequests of the pods on the node.
	Requested Resource
	// NonZeroRequested is the same with scoring defaults applied.
	NonZeroRequested Resource
	Pods             map[types.UID]*corev1.Pod
	// UsedPorts holds "protocol/hostIP/port" of host ports in use.
	UsedPorts map[string]int
	// OwnerCount counts pods per controller owner UID, for spreading.
	OwnerCount map[types.UID]int
	// antiAffinityPods counts pods with required anti-affinity terms.
	antiAffinityPods int
}

// NewNodeInfo returns an empty NodeInfo for node (which may be nil while
// pods are known on a node not seen yet).
func NewNodeInfo(node *corev1.Node) *NodeInfo {
	ni := &NodeInfo{
		Pods:       map[types.UID]*corev1.Pod{},
		UsedPorts:  map[string]int{},
		OwnerCount: map[types.UID]int{},
	}
	ni.SetNode(node)
	return ni
}

// SetNode replaces the node object.
func (ni *NodeInfo) SetNode(node *corev1.Node) {
	ni.Node = node
	if node != nil {
		ni.Allocatable = NodeAllocatable(node)
	}
}

// Name is the node's name.
func (ni *NodeInfo) Name() string {
	if ni.Node == nil {
		return ""
	}
	return ni.Node.Name
}

func portKey(protocol corev1.Protocol, hostIP string, port int32) string {
	if protocol == "" {
		protocol = corev1.ProtocolTCP
	}
	return string(protocol) + "/" + hostIP + "/" + strconv.Itoa(int(port))
}

// hostPorts calls fn for each host port a pod uses.
func hostPorts(pod *corev1.Pod, fn func(protocol corev1.Protocol, hostIP string, port int32)) {
	for i := range pod.Spec.Containers {
		for _, p := range pod.Spec.Containers[i].Ports {
			if p.HostPort > 0 {
				ip := p.HostIP
				if ip == "" {
					ip = "0.0.0.0"
				}
				fn(p.Protocol, ip, p.HostPort)
			}
		}
	}
}

// ControllerUID is the UID of the pod's controller owner, or "".
func ControllerUID(pod *corev1.Pod) types.UID {
	for _, ref := range pod.OwnerReferences {
		if ref.Controller != nil && *ref.Controller {
			return ref.UID
		}
	}
	return ""
}

// AddPod accounts pod on this node. A pod already present is replaced.
func (ni *NodeInfo) AddPod(pod *corev1.Pod) {
	if _, ok := ni.Pods[pod.UID]; ok {
		ni.RemovePod(pod.UID)
	}
	ni.Pods[pod.UID] = pod
	req := PodRequests(pod)
	ni.Requested.Add(req)
	ni.NonZeroRequested.Add(NonZeroRequests(req))
	hostPorts(pod, func(pr corev1.Protocol, ip string, port int32) { ni.UsedPorts[portKey(pr, ip, port)]++ })
	if uid := ControllerUID(pod); uid != "" {
		ni.OwnerCount[uid]++
	}
	if HasRequiredAntiAffinity(pod) {
		ni.antiAffinityPods++
	}
}

// RemovePod removes the pod with uid from this node, if present.
func (ni *NodeInfo) RemovePod(uid types.UID) {
	pod, ok := ni.Pods[uid]
	if !ok {
		return
	}
	delete(ni.Pods, uid)
	req := PodRequests(pod)
	ni.Requested.Sub(req)
	ni.NonZeroRequested.Sub(NonZeroRequests(req))
	hostPorts(pod, func(pr corev1.Protocol, ip string, port int32) {
		k := portKey(pr, ip, port)
		if ni.UsedPorts[k]--; ni.UsedPorts[k] <= 0 {
			delete(ni.UsedPorts, k)
		}
	})
	if uid := ControllerUID(pod); uid != "" {
		if ni.OwnerCount[uid]--; ni.OwnerCount[uid] <= 0 {
			delete(ni.OwnerCount, uid)
		}
	}
	if HasRequiredAntiAffinity(pod) {
		ni.antiAffinityPods--
	}
}

// portConflict reports whether pod wants a host port already used here.
// 0.0.0.0 conflicts with every address of the same protocol and port.
func (ni *NodeInfo) portConflict(pod *corev1.Pod) bool {
	conflict := false
	hostPorts(pod, func(pr corev1.Protocol, ip string, port int32) {
		if conflict {
			return
		}
		if ni.UsedPorts[portKey(pr, ip, port)] > 0 || ni.UsedPorts[portKey(pr, "0.0.0.0", port)] > 0 {
			conflict = true
			return
		}
		if ip == "0.0.0.0" {
			prefix := string(pr)
			if prefix == "" {
				prefix = string(corev1.ProtocolTCP)
			}
			suffix := "/" + strconv.Itoa(int(port))
			for k := range ni.UsedPorts {
				if len(k) > len(prefix) && k[:len(prefix)+1] == prefix+"/" && len(k) > len(suffix) && k[len(k)-len(suffix):] == suffix {
					conflict = true
					return
				}
			}
		}
	})
	return conflict
}
