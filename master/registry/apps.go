package registry

import (
	"fmt"
	"k8s.io/apimachinery/pkg/util/intstr"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// replicaColumns are the columns of ReplicaSets and ReplicationControllers.
func replicaColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{colName, col("Desired", "integer"), col("Current", "integer"),
		col("Ready", "integer"), colAge, wide("Containers", "string"), wide("Images", "string"), wide("Selector", "string")}
}

// templateCells are the wide CONTAINERS, IMAGES, SELECTOR cells.
func templateCells(t *corev1.PodTemplateSpec, selector string) []any {
	var names, images []string
	if t != nil {
		for _, c := range t.Spec.Containers {
			names = append(names, c.Name)
			images = append(images, c.Image)
		}
	}
	return []any{strings.Join(names, ","), strings.Join(images, ","), orNone(selector)}
}

func selectorString(s *metav1.LabelSelector) string {
	if s == nil {
		return ""
	}
	return metav1.FormatLabelSelector(s)
}

// templateStrategy defaults and validates the pod template of a workload.
type templateStrategy struct {
	BaseStrategy
	template func(runtime.Object) (*corev1.PodTemplateSpec, *metav1.LabelSelector)
}

func (s templateStrategy) PrepareForCreate(o runtime.Object) {
	t, _ := s.template(o)
	DefaultPodSpec(&t.Spec)
}

func (s templateStrategy) PrepareForUpdate(o, _ runtime.Object) { s.PrepareForCreate(o) }

func (s templateStrategy) Validate(o runtime.Object) field.ErrorList {
	t, sel := s.template(o)
	var errs field.ErrorList
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		errs = append(errs, field.Required(field.NewPath("spec", "selector"), ""))
	} else if ls, err := metav1.LabelSelectorAsSelector(sel); err != nil {
		errs = append(errs, field.Invalid(field.NewPath("spec", "selector"), sel, err.Error()))
	} else if !ls.Matches(labelsSet(t.Labels)) {
		errs = append(errs, field.Invalid(field.NewPath("spec", "template", "metadata", "labels"), t.Labels,
			"`selector` does not match template `labels`"))
	}
	return append(errs, ValidatePodSpec(&t.Spec, field.NewPath("spec", "template", "spec"))...)
}

func replicasScale(get func(runtime.Object) (*int32, int32, *metav1.LabelSelector)) *ScaleAccess {
	return &ScaleAccess{
		Get: func(o runtime.Object) (int32, int32, string) {
			spec, status, sel := get(o)
			return deref(spec, 1), status, selectorString(sel)
		},
		Set: func(o runtime.Object, n int32) {
			spec, _, _ := get(o)
			*spec = n
		},
	}
}

func deployments() *Resource {
	r := withStatus(appsV1, "Deployment", "deployments", "deployment", true, []string{"deploy"}, []string{"all"})
	r.Subresources = []string{"status", "scale"}
	r.Strategy = templateStrategy{template: func(o runtime.Object) (*corev1.PodTemplateSpec, *metav1.LabelSelector) {
		d := o.(*appsv1.Deployment)
		defaultDeployment(d)
		return &d.Spec.Template, d.Spec.Selector
	}}
	r.Scale = replicasScale(func(o runtime.Object) (*int32, int32, *metav1.LabelSelector) {
		d := o.(*appsv1.Deployment)
		defaultDeployment(d)
		return d.Spec.Replicas, d.Status.Replicas, d.Spec.Selector
	})
	r.Columns = []metav1.TableColumnDefinition{colName, col("Ready", "string"), col("Up-to-date", "string"),
		col("Available", "string"), colAge, wide("Containers", "string"), wide("Images", "string"), wide("Selector", "string")}
	r.Row = func(o runtime.Object) []any {
		d := o.(*appsv1.Deployment)
		return append([]any{d.Name, fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, deref(d.Spec.Replicas, 1)),
			fmt.Sprint(d.Status.UpdatedReplicas), fmt.Sprint(d.Status.AvailableReplicas), age(o)},
			templateCells(&d.Spec.Template, selectorString(d.Spec.Selector))...)
	}
	return r
}

func defaultDeployment(d *appsv1.Deployment) {
	if d.Spec.Replicas == nil {
		one := int32(1)
		d.Spec.Replicas = &one
	}
	if d.Spec.Strategy.Type == "" {
		d.Spec.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if d.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType && d.Spec.Strategy.RollingUpdate == nil {
		quarter := intstr.FromString("25%")
		d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxUnavailable: &quarter, MaxSurge: &quarter}
	}
	if d.Spec.RevisionHistoryLimit == nil {
		n := int32(10)
		d.Spec.RevisionHistoryLimit = &n
	}
	if d.Spec.ProgressDeadlineSeconds == nil {
		n := int32(600)
		d.Spec.ProgressDeadlineSeconds = &n
	}
}

func replicaSets() *Resource {
	r := withStatus(appsV1, "ReplicaSet", "replicasets", "replicaset", true, []string{"rs"}, []string{"all"})
	r.Subresources = []string{"status", "scale"}
	r.FieldLabels = []string{"status.replicas"}
	r.Fields = func(o runtime.Object) fields.Set {
		return fields.Set{"status.replicas": fmt.Sprint(o.(*appsv1.ReplicaSet).Status.Replicas)}
	}
	get := func(o runtime.Object) (*int32, int32, *metav1.LabelSelector) {
		rs := o.(*appsv1.ReplicaSet)
		if rs.Spec.Replicas == nil {
			one := int32(1)
			rs.Spec.Replicas = &one
		}
		return rs.Spec.Replicas, rs.Status.Replicas, rs.Spec.Selector
	}
	r.Strategy = templateStrategy{template: func(o runtime.Object) (*corev1.PodTemplateSpec, *metav1.LabelSelector) {
		get(o)
		rs := o.(*appsv1.ReplicaSet)
		return &rs.Spec.Template, rs.Spec.Selector
	}}
	r.Scale = replicasScale(get)
	r.Columns = replicaColumns()
	r.Row = func(o runtime.Object) []any {
		rs := o.(*appsv1.ReplicaSet)
		return append([]any{rs.Name, deref(rs.Spec.Replicas, 1), rs.Status.Replicas, rs.Status.ReadyReplicas, age(o)},
			templateCells(&rs.Spec.Template, selectorString(rs.Spec.Selector))...)
	}
	return r
}

func daemonSets() *Resource {
	r := withStatus(appsV1, "DaemonSet", "daemonsets", "daemonset", true, []string{"ds"}, []string{"all"})
	r.Strategy = templateStrategy{template: func(o runtime.Object) (*corev1.PodTemplateSpec, *metav1.LabelSelector) {
		ds := o.(*appsv1.DaemonSet)
		if ds.Spec.UpdateStrategy.Type == "" {
			ds.Spec.UpdateStrategy.Type = appsv1.RollingUpdateDaemonSetStrategyType
		}
		return &ds.Spec.Template, ds.Spec.Selector
	}}
	r.Columns = []metav1.TableColumnDefinition{colName, col("Desired", "integer"), col("Current", "integer"),
		col("Ready", "integer"), col("Up-to-date", "integer"), col("Available", "integer"), col("Node Selector", "string"),
		colAge, wide("Containers", "string"), wide("Images", "string"), wide("Selector", "string")}
	r.Row = func(o runtime.Object) []any {
		ds := o.(*appsv1.DaemonSet)
		st := ds.Status
		return append([]any{ds.Name, st.DesiredNumberScheduled, st.CurrentNumberScheduled, st.NumberReady,
			st.UpdatedNumberScheduled, st.NumberAvailable, orNone(mapString(ds.Spec.Template.Spec.NodeSelector)), age(o)},
			templateCells(&ds.Spec.Template, selectorString(ds.Spec.Selector))...)
	}
	return r
}

func statefulSets() *Resource {
	r := withStatus(appsV1, "StatefulSet", "statefulsets", "statefulset", true, []string{"sts"}, []string{"all"})
	r.Subresources = []string{"status", "scale"}
	get := func(o runtime.Object) (*int32, int32, *metav1.LabelSelector) {
		ss := o.(*appsv1.StatefulSet)
		if ss.Spec.Replicas == nil {
			one := int32(1)
			ss.Spec.Replicas = &one
		}
		return ss.Spec.Replicas, ss.Status.Replicas, ss.Spec.Selector
	}
	r.Strategy = templateStrategy{template: func(o runtime.Object) (*corev1.PodTemplateSpec, *metav1.LabelSelector) {
		get(o)
		ss := o.(*appsv1.StatefulSet)
		if ss.Spec.PodManagementPolicy == "" {
			ss.Spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
		}
		if ss.Spec.UpdateStrategy.Type == "" {
			ss.Spec.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
		}
		return &ss.Spec.Template, ss.Spec.Selector
	}}
	r.Scale = replicasScale(get)
	r.Columns = []metav1.TableColumnDefinition{colName, col("Ready", "string"), colAge,
		wide("Containers", "string"), wide("Images", "string")}
	r.Row = func(o runtime.Object) []any {
		ss := o.(*appsv1.StatefulSet)
		cells := templateCells(&ss.Spec.Template, "")
		return []any{ss.Name, fmt.Sprintf("%d/%d", ss.Status.ReadyReplicas, deref(ss.Spec.Replicas, 1)), age(o), cells[0], cells[1]}
	}
	return r
}

// controllerRevisions are the template snapshots the DaemonSet and
// StatefulSet controllers keep for `kubectl rollout history/undo`.
func controllerRevisions() *Resource {
	return withTable(plain(appsV1, "ControllerRevision", "controllerrevisions", "controllerrevision", true, nil, nil),
		[]metav1.TableColumnDefinition{colName, col("Controller", "string"), col("Revision", "integer"), colAge},
		func(o runtime.Object) []any {
			cr := o.(*appsv1.ControllerRevision)
			controller := "<none>"
			if ref := metav1.GetControllerOf(cr); ref != nil {
				gv, _ := schema.ParseGroupVersion(ref.APIVersion)
				controller = strings.ToLower(schema.GroupKind{Group: gv.Group, Kind: ref.Kind}.String()) + "/" + ref.Name
			}
			return []any{cr.Name, controller, cr.Revision, age(o)}
		})
}

func mapString(m map[string]string) string {
	return labelsSet(m).String()
}
