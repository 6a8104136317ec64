package masterendpoints

import (
	"cmp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DesiredSubsets lists masters in Endpoints form: one subset per secure
// port (masters are meant to share one, as upstream requires; distinct
// ports get subsets of their own instead of the masters overwriting each
// other's), ports ascending, addresses sorted and without duplicates.
// Every master computes the same result from the same leases.
func DesiredSubsets(masters []Master) []corev1.EndpointSubset {
	ms := slices.Clone(masters)
	slices.SortFunc(ms, func(a, b Master) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), a.IP.Compare(b.IP))
	})
	ms = slices.Compact(ms)
	var out []corev1.EndpointSubset
	for i, m := range ms {
		if i == 0 || ms[i-1].Port != m.Port {
			out = append(out, corev1.EndpointSubset{Ports: []corev1.EndpointPort{
				{Name: PortName, Port: m.Port, Protocol: corev1.ProtocolTCP}}})
		}
		s := &out[len(out)-1]
		s.Addresses = append(s.Addresses, corev1.EndpointAddress{IP: m.IP.String()})
	}
	return out
}

// DesiredSlice is the EndpointSlice of the first subset, as upstream's
// Endpoints-to-EndpointSlice adapter writes it: a slice has one port
// list for all its endpoints, and one address family. With no masters
// it is an empty IPv4 slice ("no endpoints", not "unknown").
func DesiredSlice(subsets []corev1.EndpointSubset) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: Name, Namespace: Namespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: Name}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	if len(subsets) == 0 {
		return s
	}
	first := subsets[0]
	if isIPv6(first.Addresses[0].IP) {
		s.AddressType = discoveryv1.AddressTypeIPv6
	}
	ready := true
	for _, a := range first.Addresses {
		if isIPv6(a.IP) != (s.AddressType == discoveryv1.AddressTypeIPv6) {
			continue
		}
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{a.IP},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	for _, p := range first.Ports {
		name, port, proto := p.Name, p.Port, p.Protocol
		s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: &name, Port: &port, Protocol: &proto})
	}
	return s
}

func isIPv6(ip string) bool { return strings.Contains(ip, ":") }
