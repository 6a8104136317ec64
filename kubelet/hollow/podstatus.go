package hollow

import (
	"fmt"
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// isRunning reports whether the pod already has the status runningStatus
// writes (so an update event of our own write costs no API call).
func isRunning(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP == "" {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// runningStatus is the status of a pod whose init containers completed
// and whose containers all started and are ready at now.
func runningStatus(pod *corev1.Pod, hostIP, podIP string, now metav1.Time) corev1.PodStatus {
	cond := func(t corev1.PodConditionType) corev1.PodCondition {
		return corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now}
	}
	st := corev1.PodStatus{
		Phase:     corev1.PodRunning,
		HostIP:    hostIP,
		HostIPs:   []corev1.HostIP{{IP: hostIP}},
		PodIP:     podIP,
		PodIPs:    []corev1.PodIP{{IP: podIP}},
		StartTime: &now,
		Conditions: []corev1.PodCondition{
			cond(corev1.PodReadyToStartContainers), cond(corev1.PodInitialized),
			cond(corev1.PodReady), cond(corev1.ContainersReady), cond(corev1.PodScheduled),
		},
		QOSClass: pod.Status.QOSClass,
	}
	if pod.Spec.HostNetwork {
		st.PodIP, st.PodIPs = hostIP, []corev1.PodIP{{IP: hostIP}}
	}
	id := func(c corev1.Container) string { return fmt.Sprintf("hollow://%s/%s", pod.UID, c.Name) }
	for _, c := range pod.Spec.InitContainers {
		st.InitContainerStatuses = append(st.InitContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, ContainerID: id(c), Ready: true,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				Reason: "Completed", StartedAt: now, FinishedAt: now, ContainerID: id(c)}},
		})
	}
	started := true
	for _, c := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, ContainerID: id(c), Ready: true, Started: &started,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	return st
}

// fallbackCIDR is node index's made-up /24 in 100.64.0.0/10 (16,384 nodes).
func fallbackCIDR(index int) string {
	return fmt.Sprintf("100.%d.%d.0/24", 64+(index>>8)&63, index&255)
}

// podIPs hands out pod IPs per node from its CIDR: .0 and .1 (the bridge,
// as with flannel) are skipped and an address is reused only after its pod
// is gone.
type podIPs struct {
	mu    sync.Mutex
	nodes map[string]*nodeIPs
}

type nodeIPs struct {
	byUID map[types.UID]netip.Addr
	used  map[netip.Addr]bool
	next  netip.Addr
}

func newPodIPs() *podIPs { return &podIPs{nodes: map[string]*nodeIPs{}} }

func (p *podIPs) node(name string) *nodeIPs {
	n := p.nodes[name]
	if n == nil {
		n = &nodeIPs{byUID: map[types.UID]netip.Addr{}, used: map[netip.Addr]bool{}}
		p.nodes[name] = n
	}
	return n
}

// assign returns the pod's address, picking the next free one of cidr.
func (p *podIPs) assign(nodeName string, uid types.UID, cidr string) (netip.Addr, error) {
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil || !prefix.Addr().Is4() {
		return netip.Addr{}, fmt.Errorf("node %s: pod CIDR %q is not an IPv4 CIDR", nodeName, cidr)
	}
	prefix = prefix.Masked()
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.node(nodeName)
	if ip, ok := n.byUID[uid]; ok && prefix.Contains(ip) {
		return ip, nil
	}
	first := prefix.Addr().Next().Next()
	if !prefix.Contains(n.next) || !prefix.Contains(n.next.Next()) {
		n.next = first
	}
	for ip := n.next; ; {
		if !n.used[ip] && prefix.Contains(ip.Next()) { // the last address is broadcast
			n.used[ip], n.byUID[uid], n.next = true, ip, ip.Next()
			return ip, nil
		}
		if ip = ip.Next(); !prefix.Contains(ip.Next()) {
			ip = first
		}
		if ip == n.next {
			return netip.Addr{}, fmt.Errorf("node %s: pod CIDR %s is full", nodeName, cidr)
		}
	}
}

// reserve records an address a pod already has (e.g. after a restart of
// the hollow node process).
func (p *podIPs) reserve(nodeName string, uid types.UID, ip string) {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.node(nodeName)
	if _, ok := n.byUID[uid]; !ok {
		n.byUID[uid], n.used[addr] = addr, true
	}
}

// release frees the pod's address.
func (p *podIPs) release(nodeName string, uid types.UID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := p.nodes[nodeName]; n != nil {
		if ip, ok := n.byUID[uid]; ok {
			delete(n.byUID, uid)
			delete(n.used, ip)
		}
	}
}
