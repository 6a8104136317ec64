package registry

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func pods() *Resource {
	r := withStatus(coreV1, "Pod", "pods", "pod", true, []string{"po"}, []string{"all"})
	r.Subresources = []string{"status", "binding", "eviction"}
	r.Strategy = podStrategy{}
	r.FieldLabels = []string{"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
		"status.phase", "status.podIP", "status.nominatedNodeName"}
	r.Fields = func(o runtime.Object) fields.Set {
		p := o.(*corev1.Pod)
		return fields.Set{"spec.nodeName": p.Spec.NodeName, "spec.restartPolicy": string(p.Spec.RestartPolicy),
			"spec.schedulerName": p.Spec.SchedulerName, "spec.serviceAccountName": p.Spec.ServiceAccountName,
			"status.phase": string(p.Status.Phase), "status.podIP": p.Status.PodIP,
			"status.nominatedNodeName": p.Status.NominatedNodeName}
	}
	r.Columns = []metav1.TableColumnDefinition{colName, col("Ready", "string"), col("Status", "string"),
		col("Restarts", "string"), colAge, wide("IP", "string"), wide("Node", "string"),
		wide("Nominated Node", "string"), wide("Readiness Gates", "string")}
	r.Row = podRow
	return r
}

func podRow(o runtime.Object) []any {
	p := o.(*corev1.Pod)
	ready, restarts := 0, int32(0)
	reason := string(p.Status.Phase)
	if p.Status.Reason != "" {
		reason = p.Status.Reason
	}
	for _, cs := range p.Status.ContainerStatuses {
		restarts += cs.RestartCount
		if cs.Ready && cs.State.Running != nil {
			ready++
		}
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			reason = w.Reason
		} else if t := cs.State.Terminated; t != nil && t.Reason != "" {
			reason = t.Reason
		}
	}
	if p.DeletionTimestamp != nil {
		reason = "Terminating"
	}
	gates := "<none>"
	if n := len(p.Spec.ReadinessGates); n > 0 {
		gates = fmt.Sprintf("0/%d", n)
	}
	return []any{p.Name, fmt.Sprintf("%d/%d", ready, len(p.Spec.Containers)), reason, fmt.Sprint(restarts), age(o),
		orNone(p.Status.PodIP), orNone(p.Spec.NodeName), orNone(p.Status.NominatedNodeName), gates}
}

type podStrategy struct{ BaseStrategy }

func (podStrategy) PrepareForCreate(o runtime.Object) {
	p := o.(*corev1.Pod)
	DefaultPodSpec(&p.Spec)
	p.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: qosClass(&p.Spec)}
}

func (podStrategy) Validate(o runtime.Object) field.ErrorList {
	return ValidatePodSpec(&o.(*corev1.Pod).Spec, field.NewPath("spec"))
}

func (podStrategy) ValidateUpdate(o, old runtime.Object) field.ErrorList {
	p, op := o.(*corev1.Pod), old.(*corev1.Pod)
	var errs field.ErrorList
	if op.Spec.NodeName != "" && p.Spec.NodeName != op.Spec.NodeName {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "nodeName"), "pod updates may not change nodeName once set"))
	}
	if len(p.Spec.Containers) != len(op.Spec.Containers) {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "containers"), "pod updates may not add or remove containers"))
	}
	return errs
}

// qosClass follows upstream's rules: Guaranteed when every container has
// equal cpu and memory requests and limits, BestEffort when none sets any.
func qosClass(spec *corev1.PodSpec) corev1.PodQOSClass {
	any, guaranteed := false, true
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		if len(c.Resources.Requests) > 0 || len(c.Resources.Limits) > 0 {
			any = true
		}
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			l, hasL := c.Resources.Limits[res]
			rq, hasR := c.Resources.Requests[res]
			if !hasL || (hasR && rq.Cmp(l) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case !any:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

// DefaultPodSpec applies upstream's pod defaults (also used by pod templates).
func DefaultPodSpec(s *corev1.PodSpec) {
	if s.RestartPolicy == "" {
		s.RestartPolicy = corev1.RestartPolicyAlways
	}
	if s.DNSPolicy == "" {
		s.DNSPolicy = corev1.DNSClusterFirst
	}
	if s.SchedulerName == "" {
		s.SchedulerName = corev1.DefaultSchedulerName
	}
	if s.TerminationGracePeriodSeconds == nil {
		g := int64(corev1.DefaultTerminationGracePeriodSeconds)
		s.TerminationGracePeriodSeconds = &g
	}
	if s.SecurityContext == nil {
		s.SecurityContext = &corev1.PodSecurityContext{}
	}
	if s.ServiceAccountName == "" {
		s.ServiceAccountName = "default"
	}
	for _, cs := range [][]corev1.Container{s.InitContainers, s.Containers} {
		for i := range cs {
			defaultContainer(&cs[i])
		}
	}
}

func defaultContainer(c *corev1.Container) {
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = corev1.PullIfNotPresent
		if tagOf(c.Image) == "latest" {
			c.ImagePullPolicy = corev1.PullAlways
		}
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = corev1.ProtocolTCP
		}
	}
}

func tagOf(image string) string {
	if strings.Contains(image, "@") {
		return ""
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[i+1:]
	}
	return "latest"
}
