package endpoints

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
)

// MaxEndpointsPerSlice caps one EndpointSlice, as upstream's default.
const MaxEndpointsPerSlice = 100

// podState classifies a pod for a service.
type podState struct {
	pod                         *corev1.Pod
	ready, serving, terminating bool
}

// include decides whether pod appears at all: it needs an IP and must not
// have finished; terminating pods appear only in EndpointSlices (Endpoints
// drops them unless the service publishes not-ready addresses).
func classify(svc *corev1.Service, pod *corev1.Pod) (podState, bool) {
	if pod.Status.PodIP == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return podState{}, false
	}
	ready := ctrlutil.PodReady(pod)
	term := pod.DeletionTimestamp != nil
	st := podState{pod: pod, serving: ready, terminating: term, ready: ready && !term}
	if svc.Spec.PublishNotReadyAddresses {
		st.ready, st.serving = true, true
	}
	return st, true
}

// resolvePort finds the port number a service port targets on pod; named
// target ports are looked up in the pod's containers.
func resolvePort(sp *corev1.ServicePort, pod *corev1.Pod) (int32, bool) {
	tp := sp.TargetPort
	switch {
	case tp.Type == intstr.String && tp.StrVal != "":
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == tp.StrVal && protocolOf(p.Protocol) == protocolOf(sp.Protocol) {
					return p.ContainerPort, true
				}
			}
		}
		return 0, false
	case tp.Type == intstr.Int && tp.IntVal != 0:
		return tp.IntVal, true
	}
	return sp.Port, true
}

func protocolOf(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// endpointPort is one resolved port of a pod.
type endpointPort struct {
	name     string
	port     int32
	protocol corev1.Protocol
	appProto *string
}

func podPorts(svc *corev1.Service, pod *corev1.Pod) []endpointPort {
	var out []endpointPort
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		if n, ok := resolvePort(sp, pod); ok {
			out = append(out, endpointPort{sp.Name, n, protocolOf(sp.Protocol), sp.AppProtocol})
		}
	}
	return out
}

func portsKey(ports []endpointPort) string {
	parts := make([]string, len(ports))
	for i, p := range ports {
		parts[i] = fmt.Sprintf("%s/%d/%s", p.name, p.port, p.protocol)
	}
	return strings.Join(parts, ",")
}

func targetRef(pod *corev1.Pod) *corev1.ObjectReference {
	return &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}
}

func hostname(svc *corev1.Service, pod *corev1.Pod) string {
	if pod.Spec.Hostname != "" && pod.Spec.Subdomain == svc.Name && svc.Namespace == pod.Namespace {
		return pod.Spec.Hostname
	}
	return ""
}

// group collects pods sharing one resolved port set.
type group struct {
	ports []endpointPort
	pods  []podState
}

func groups(svc *corev1.Service, pods []*corev1.Pod) []*group {
	byKey := map[string]*group{}
	var keys []string
	for _, pod := range pods {
		st, ok := classify(svc, pod)
		if !ok {
			continue
		}
		ports := podPorts(svc, pod)
		if len(svc.Spec.Ports) > 0 && len(ports) == 0 {
			continue
		}
		k := portsKey(ports)
		g := byKey[k]
		if g == nil {
			g = &group{ports: ports}
			byKey[k] = g
			keys = append(keys, k)
		}
		g.pods = append(g.pods, st)
	}
	sort.Strings(keys)
	out := make([]*group, len(keys))
	for i, k := range keys {
		g := byKey[k]
		sort.Slice(g.pods, func(a, b int) bool { return g.pods[a].pod.Name < g.pods[b].pod.Name })
		out[i] = g
	}
	return out
}

// DesiredSubsets is the Endpoints content for svc: one subset per distinct
// port set, ready pods in addresses and the rest in notReadyAddresses;
// terminating pods are left out.
func DesiredSubsets(svc *corev1.Service, pods []*corev1.Pod) []corev1.EndpointSubset {
	var subsets []corev1.EndpointSubset
	for _, g := range groups(svc, pods) {
		var ss corev1.EndpointSubset
		for _, st := range g.pods {
			if st.terminating && !svc.Spec.PublishNotReadyAddresses {
				continue
			}
			addr := corev1.EndpointAddress{IP: st.pod.Status.PodIP, Hostname: hostname(svc, st.pod), TargetRef: targetRef(st.pod)}
			if st.pod.Spec.NodeName != "" {
				n := st.pod.Spec.NodeName
				addr.NodeName = &n
			}
			if st.ready {
				ss.Addresses = append(ss.Addresses, addr)
			} else {
				ss.NotReadyAddresses = append(ss.NotReadyAddresses, addr)
			}
		}
		if len(ss.Addresses) == 0 && len(ss.NotReadyAddresses) == 0 {
			continue
		}
		for _, p := range g.ports {
			ss.Ports = append(ss.Ports, corev1.EndpointPort{Name: p.name, Port: p.port, Protocol: p.protocol, AppProtocol: p.appProto})
		}
		subsets = append(subsets, ss)
	}
	return subsets
}

// SliceContent is the desired content of one EndpointSlice.
type SliceContent struct {
	AddressType discoveryv1.AddressType
	Ports       []discoveryv1.EndpointPort
	Endpoints   []discoveryv1.Endpoint
}

// Key groups slices that may replace each other.
func (s *SliceContent) Key() string {
	parts := []string{string(s.AddressType)}
	for _, p := range s.Ports {
		parts = append(parts, fmt.Sprintf("%s/%d/%s", deref(p.Name), deref32(p.Port), derefProto(p.Protocol)))
	}
	return strings.Join(parts, ",")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func deref32(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func derefProto(p *corev1.Protocol) corev1.Protocol {
	if p == nil {
		return ""
	}
	return *p
}

func addressType(ip string) discoveryv1.AddressType {
	if a, err := netip.ParseAddr(ip); err == nil && a.Is6() {
		return discoveryv1.AddressTypeIPv6
	}
	return discoveryv1.AddressTypeIPv4
}

// DesiredSlices is the EndpointSlice content for svc: per port set and
// address family, chunks of at most MaxEndpointsPerSlice endpoints with
// ready/serving/terminating conditions.
func DesiredSlices(svc *corev1.Service, pods []*corev1.Pod) []SliceContent {
	var out []SliceContent
	for _, g := range groups(svc, pods) {
		var ports []discoveryv1.EndpointPort
		for _, p := range g.ports {
			name, port, proto := p.name, p.port, p.protocol
			ports = append(ports, discoveryv1.EndpointPort{Name: &name, Port: &port, Protocol: &proto, AppProtocol: p.appProto})
		}
		byFamily := map[discoveryv1.AddressType][]discoveryv1.Endpoint{}
		for _, st := range g.pods {
			ready, serving, term := st.ready, st.serving, st.terminating
			ep := discoveryv1.Endpoint{
				Addresses:  []string{st.pod.Status.PodIP},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &term},
				TargetRef:  targetRef(st.pod),
			}
			if h := hostname(svc, st.pod); h != "" {
				ep.Hostname = &h
			}
			if st.pod.Spec.NodeName != "" {
				n := st.pod.Spec.NodeName
				ep.NodeName = &n
			}
			fam := addressType(st.pod.Status.PodIP)
			byFamily[fam] = append(byFamily[fam], ep)
		}
		for _, fam := range []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6} {
			eps := byFamily[fam]
			for len(eps) > 0 {
				n := min(len(eps), MaxEndpointsPerSlice)
				out = append(out, SliceContent{AddressType: fam, Ports: ports, Endpoints: eps[:n]})
				eps = eps[n:]
			}
		}
	}
	return out
}
