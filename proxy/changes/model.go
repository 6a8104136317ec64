// Package changes turns Service and EndpointSlice objects into the proxy's
// model (ServicePort + Endpoint) and tracks which services changed between
// syncs, so a data path renders from one consistent snapshot.
package changes

import (
	"fmt"
	"net/netip"
	"sort"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ServicePortName identifies one port of one service.
type ServicePortName struct {
	types.NamespacedName
	Port     string // the service port's name ("" for a single unnamed port)
	Protocol v1.Protocol
}

func (n ServicePortName) String() string {
	if n.Port == "" {
		return n.NamespacedName.String()
	}
	return n.NamespacedName.String() + ":" + n.Port
}

// ServicePort is what a data path needs to know about one service port.
type ServicePort struct {
	Name                   ServicePortName
	ClusterIP              netip.Addr // invalid for headless services
	Port                   int32
	Protocol               v1.Protocol
	NodePort               int32 // 0: none
	ExternalIPs            []netip.Addr
	AffinityTimeoutSeconds int32 // 0: no session affinity
	ExternalPolicyLocal    bool  // externalTrafficPolicy: Local
	InternalPolicyLocal    bool  // internalTrafficPolicy: Local
	HealthCheckNodePort    int32
}

// Endpoint is one backend of a service port, as listed by an EndpointSlice.
type Endpoint struct {
	IP          netip.Addr
	Port        int32
	Ready       bool
	Serving     bool
	Terminating bool
	NodeName    string
	Local       bool // NodeName is this proxy's node
}

// AddrPort is the endpoint's address and port.
func (e Endpoint) AddrPort() netip.AddrPort { return netip.AddrPortFrom(e.IP, uint16(e.Port)) }

// State is a consistent snapshot of all services and their endpoints.
type State struct {
	Services  map[ServicePortName]*ServicePort
	Endpoints map[ServicePortName][]Endpoint // sorted by address
}

// ServicePorts converts a v1.Service into its ports; services without a
// cluster IP (headless, ExternalName) have none the proxy handles.
func ServicePorts(svc *v1.Service) ([]*ServicePort, error) {
	if svc.Spec.Type == v1.ServiceTypeExternalName || svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == v1.ClusterIPNone {
		return nil, nil
	}
	cip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil {
		return nil, fmt.Errorf("service %s/%s: clusterIP %q: %w", svc.Namespace, svc.Name, svc.Spec.ClusterIP, err)
	}
	var eips []netip.Addr
	for _, s := range svc.Spec.ExternalIPs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("service %s/%s: externalIP %q: %w", svc.Namespace, svc.Name, s, err)
		}
		eips = append(eips, a)
	}
	var timeout int32
	if svc.Spec.SessionAffinity == v1.ServiceAffinityClientIP {
		timeout = v1.DefaultClientIPServiceAffinitySeconds
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			timeout = *c.ClientIP.TimeoutSeconds
		}
	}
	nodePorts := svc.Spec.Type == v1.ServiceTypeNodePort || svc.Spec.Type == v1.ServiceTypeLoadBalancer
	out := make([]*ServicePort, 0, len(svc.Spec.Ports))
	for _, p := range svc.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = v1.ProtocolTCP
		}
		sp := &ServicePort{
			Name:                   ServicePortName{types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}, p.Name, proto},
			ClusterIP:              cip,
			Port:                   p.Port,
			Protocol:               proto,
			ExternalIPs:            eips,
			AffinityTimeoutSeconds: timeout,
			ExternalPolicyLocal:    svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal,
			InternalPolicyLocal:    svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == v1.ServiceInternalTrafficPolicyLocal,
			HealthCheckNodePort:    svc.Spec.HealthCheckNodePort,
		}
		if nodePorts {
			sp.NodePort = p.NodePort
		}
		out = append(out, sp)
	}
	return out, nil
}

// SliceEndpoints returns the endpoints a slice lists for each of its ports,
// keyed by port name and protocol: the slice port carries the resolved
// number of a named targetPort, which can differ between slices.
func SliceEndpoints(s *discovery.EndpointSlice, nodeName string) map[portKey][]Endpoint {
	if s.AddressType != discovery.AddressTypeIPv4 {
		return nil
	}
	out := map[portKey][]Endpoint{}
	for _, p := range s.Ports {
		if p.Port == nil {
			continue
		}
		k := portKey{Protocol: v1.ProtocolTCP}
		if p.Name != nil {
			k.Name = *p.Name
		}
		if p.Protocol != nil {
			k.Protocol = *p.Protocol
		}
		for _, ep := range s.Endpoints {
			c := ep.Conditions
			e := Endpoint{
				Port:        *p.Port,
				Ready:       c.Ready == nil || *c.Ready,
				Terminating: c.Terminating != nil && *c.Terminating,
			}
			e.Serving = e.Ready
			if c.Serving != nil {
				e.Serving = *c.Serving
			}
			if ep.NodeName != nil {
				e.NodeName = *ep.NodeName
				e.Local = e.NodeName == nodeName
			}
			for _, a := range ep.Addresses {
				ip, err := netip.ParseAddr(a)
				if err != nil {
					continue // the API server validates addresses; skip rather than drop the slice
				}
				e.IP = ip
				out[k] = append(out[k], e)
			}
		}
	}
	return out
}

type portKey struct {
	Name     string
	Protocol v1.Protocol
}

func sortEndpoints(eps []Endpoint) {
	sort.Slice(eps, func(i, j int) bool { return eps[i].AddrPort().Compare(eps[j].AddrPort()) < 0 })
}

// Usable picks the endpoints that may take new connections: the ready
// ones; only when none is ready, the serving-but-terminating ones (like
// upstream, so a rolling update of the last pod does not drop traffic).
func Usable(eps []Endpoint, onlyLocal bool) []Endpoint {
	var ready, terminating []Endpoint
	for _, e := range eps {
		if onlyLocal && !e.Local {
			continue
		}
		switch {
		case e.Ready && !e.Terminating:
			ready = append(ready, e)
		case e.Serving && e.Terminating:
			terminating = append(terminating, e)
		}
	}
	if len(ready) > 0 {
		return ready
	}
	return terminating
}
