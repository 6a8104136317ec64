// Package changestest builds Service and EndpointSlice objects for tests of
// the proxy's data paths, which feed them to a changes.Tracker directly.
package changestest

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Service returns a ClusterIP service in namespace "default"; opts adjust it.
func Service(name, clusterIP string, ports []v1.ServicePort, opts ...func(*v1.Service)) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec:       v1.ServiceSpec{Type: v1.ServiceTypeClusterIP, ClusterIP: clusterIP, Ports: ports},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Port is a service port; target may be a number or a port name.
func Port(name string, proto v1.Protocol, port int32, target string, nodePort int32) v1.ServicePort {
	return v1.ServicePort{Name: name, Protocol: proto, Port: port, TargetPort: intstr.Parse(target), NodePort: nodePort}
}

// NodePort makes the service type NodePort.
func NodePort(s *v1.Service) { s.Spec.Type = v1.ServiceTypeNodePort }

// ExternalLocal sets externalTrafficPolicy Local (and type NodePort).
func ExternalLocal(s *v1.Service) {
	s.Spec.Type = v1.ServiceTypeNodePort
	s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
}

// InternalLocal sets internalTrafficPolicy Local.
func InternalLocal(s *v1.Service) {
	p := v1.ServiceInternalTrafficPolicyLocal
	s.Spec.InternalTrafficPolicy = &p
}

// Affinity sets sessionAffinity ClientIP with the given timeout.
func Affinity(seconds int32) func(*v1.Service) {
	return func(s *v1.Service) {
		s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: &seconds}}
	}
}

// ExternalIPs sets spec.externalIPs.
func ExternalIPs(ips ...string) func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.ExternalIPs = ips }
}

// SlicePort is a resolved EndpointSlice port.
func SlicePort(name string, proto v1.Protocol, port int32) discovery.EndpointPort {
	return discovery.EndpointPort{Name: &name, Protocol: &proto, Port: &port}
}

// EP is an endpoint of a slice.
type EP struct {
	IP          string
	Node        string
	NotReady    bool
	Terminating bool // also serving
}

// Slice returns an IPv4 EndpointSlice of service svc.
func Slice(svc, name string, ports []discovery.EndpointPort, eps ...EP) *discovery.EndpointSlice {
	s := &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name,
			Labels: map[string]string{discovery.LabelServiceName: svc}},
		AddressType: discovery.AddressTypeIPv4,
		Ports:       ports,
	}
	for _, e := range eps {
		ready, serving, term := !e.NotReady && !e.Terminating, !e.NotReady, e.Terminating
		node := e.Node
		s.Endpoints = append(s.Endpoints, discovery.Endpoint{
			Addresses:  []string{e.IP},
			Conditions: discovery.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &term},
			NodeName:   &node,
		})
	}
	return s
}

// SliceName returns a slice name for service svc numbered i.
func SliceName(svc string, i int) string { return fmt.Sprintf("%s-%d", svc, i) }
