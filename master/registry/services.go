package registry

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func services() *Resource {
	r := withStatus(coreV1, "Service", "services", "service", true, []string{"svc"}, []string{"all"})
	r.DNSLabelNames = true
	r.Strategy = serviceStrategy{}
	r.Columns = []metav1.TableColumnDefinition{colName, col("Type", "string"), col("Cluster-IP", "string"),
		col("External-IP", "string"), col("Port(s)", "string"), colAge, wide("Selector", "string")}
	r.Row = func(o runtime.Object) []any {
		s := o.(*corev1.Service)
		var ports []string
		for _, p := range s.Spec.Ports {
			if p.NodePort != 0 {
				ports = append(ports, fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol))
			} else {
				ports = append(ports, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
			}
		}
		ext := "<none>"
		if len(s.Spec.ExternalIPs) > 0 {
			ext = strings.Join(s.Spec.ExternalIPs, ",")
		} else if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
			ext = "<pending>"
		} else if s.Spec.Type == corev1.ServiceTypeExternalName {
			ext = s.Spec.ExternalName
		}
		ip := s.Spec.ClusterIP
		if ip == "" {
			ip = "<none>"
		}
		return []any{s.Name, string(s.Spec.Type), ip, ext, orNone(strings.Join(ports, ",")), age(o),
			orNone(mapString(s.Spec.Selector))}
	}
	return r
}

type serviceStrategy struct{ BaseStrategy }

func (serviceStrategy) PrepareForCreate(o runtime.Object) { defaultService(o.(*corev1.Service)) }

func (serviceStrategy) PrepareForUpdate(o, old runtime.Object) {
	s, os := o.(*corev1.Service), old.(*corev1.Service)
	CarryServiceAllocations(s, os)
	defaultService(s)
}

// CarryServiceAllocations keeps the allocated ClusterIP and NodePorts of os
// in s where an update (such as kubectl apply) omits them.
func CarryServiceAllocations(s, os *corev1.Service) {
	if s.Spec.ClusterIP == "" {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = os.Spec.ClusterIP, os.Spec.ClusterIPs
	}
	for i := range s.Spec.Ports {
		for _, op := range os.Spec.Ports {
			if s.Spec.Ports[i].NodePort == 0 && op.Port == s.Spec.Ports[i].Port && op.Protocol == s.Spec.Ports[i].Protocol {
				s.Spec.Ports[i].NodePort = op.NodePort
			}
		}
	}
}

func defaultService(s *corev1.Service) {
	if s.Spec.Type == "" {
		s.Spec.Type = corev1.ServiceTypeClusterIP
	}
	if s.Spec.SessionAffinity == "" {
		s.Spec.SessionAffinity = corev1.ServiceAffinityNone
	}
	if s.Spec.Type != corev1.ServiceTypeExternalName {
		if s.Spec.InternalTrafficPolicy == nil {
			p := corev1.ServiceInternalTrafficPolicyCluster
			s.Spec.InternalTrafficPolicy = &p
		}
		if len(s.Spec.IPFamilies) == 0 {
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		}
		if s.Spec.IPFamilyPolicy == nil {
			p := corev1.IPFamilyPolicySingleStack
			s.Spec.IPFamilyPolicy = &p
		}
	}
	if (s.Spec.Type == corev1.ServiceTypeNodePort || s.Spec.Type == corev1.ServiceTypeLoadBalancer) && s.Spec.ExternalTrafficPolicy == "" {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	}
	for i := range s.Spec.Ports {
		p := &s.Spec.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort == (intstr.IntOrString{}) {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
}

func (serviceStrategy) Validate(o runtime.Object) field.ErrorList {
	s := o.(*corev1.Service)
	var errs field.ErrorList
	p := field.NewPath("spec")
	switch s.Spec.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
		if len(s.Spec.Ports) == 0 && s.Spec.ClusterIP != corev1.ClusterIPNone {
			errs = append(errs, field.Required(p.Child("ports"), ""))
		}
	case corev1.ServiceTypeExternalName:
		if s.Spec.ExternalName == "" {
			errs = append(errs, field.Required(p.Child("externalName"), ""))
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("type"), s.Spec.Type, []string{"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"}))
	}
	seen := map[string]bool{}
	for i, port := range s.Spec.Ports {
		pp := p.Child("ports").Index(i)
		for _, msg := range validation.IsValidPortNum(int(port.Port)) {
			errs = append(errs, field.Invalid(pp.Child("port"), port.Port, msg))
		}
		if len(s.Spec.Ports) > 1 && port.Name == "" {
			errs = append(errs, field.Required(pp.Child("name"), ""))
		}
		key := fmt.Sprintf("%d/%s", port.Port, port.Protocol)
		if seen[key] {
			errs = append(errs, field.Duplicate(pp, key))
		}
		seen[key] = true
	}
	return errs
}
