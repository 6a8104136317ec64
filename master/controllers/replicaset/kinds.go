package replicaset

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
)

// statusPatch spells out every field: omitempty would drop zeros from a
// merge patch and leave stale counts behind.
func statusPatch(st Status) []byte {
	return ctrlutil.MergePatch(map[string]any{"status": map[string]any{
		"replicas": st.Replicas, "fullyLabeledReplicas": st.FullyLabeledReplicas, "readyReplicas": st.ReadyReplicas,
		"availableReplicas": st.AvailableReplicas, "observedGeneration": st.ObservedGeneration,
	}})
}

// Status is the part of the status both kinds share.
type Status struct {
	Replicas, FullyLabeledReplicas, ReadyReplicas, AvailableReplicas int32
	ObservedGeneration                                               int64
}

// Set is one ReplicaSet or ReplicationController seen through the narrow
// view the core needs.
type Set struct {
	Obj             runtime.Object // for events
	Meta            metav1.Object
	Replicas        int32
	Selector        labels.Selector
	Template        *corev1.PodTemplateSpec
	MinReadySeconds int32
	Status          Status
}

// kind adapts one API kind to the shared core.
type kind interface {
	gvk() schema.GroupVersionKind
	informer() cache.SharedIndexInformer
	// get reads the set from the informer cache.
	get(ns, name string) (*Set, error)
	// list returns the sets of namespace ns from the cache.
	list(ns string) ([]*Set, error)
	updateStatus(ctx context.Context, s *Set, st Status) error
}

type replicaSets struct {
	client  kubernetes.Interface
	factory informers.SharedInformerFactory
}

func (replicaSets) gvk() schema.GroupVersionKind {
	return appsv1.SchemeGroupVersion.WithKind("ReplicaSet")
}
func (k replicaSets) informer() cache.SharedIndexInformer {
	return k.factory.Apps().V1().ReplicaSets().Informer()
}

func rsView(rs *appsv1.ReplicaSet) *Set {
	sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil || rs.Spec.Selector == nil {
		sel = labels.Nothing()
	}
	replicas := int32(1)
	if rs.Spec.Replicas != nil {
		replicas = *rs.Spec.Replicas
	}
	st := rs.Status
	return &Set{Obj: rs, Meta: rs, Replicas: replicas, Selector: sel, Template: &rs.Spec.Template,
		MinReadySeconds: rs.Spec.MinReadySeconds,
		Status:          Status{st.Replicas, st.FullyLabeledReplicas, st.ReadyReplicas, st.AvailableReplicas, st.ObservedGeneration}}
}

func (k replicaSets) get(ns, name string) (*Set, error) {
	rs, err := k.factory.Apps().V1().ReplicaSets().Lister().ReplicaSets(ns).Get(name)
	if err != nil {
		return nil, err
	}
	return rsView(rs), nil
}

func (k replicaSets) list(ns string) ([]*Set, error) {
	all, err := k.factory.Apps().V1().ReplicaSets().Lister().ReplicaSets(ns).List(labels.Everything())
	out := make([]*Set, 0, len(all))
	for _, rs := range all {
		out = append(out, rsView(rs))
	}
	return out, err
}

func (k replicaSets) updateStatus(ctx context.Context, s *Set, st Status) error {
	rs := s.Obj.(*appsv1.ReplicaSet).DeepCopy()
	next := rs.Status
	next.Replicas, next.FullyLabeledReplicas, next.ReadyReplicas = st.Replicas, st.FullyLabeledReplicas, st.ReadyReplicas
	next.AvailableReplicas, next.ObservedGeneration = st.AvailableReplicas, st.ObservedGeneration
	if equality.Semantic.DeepEqual(next, rs.Status) {
		return nil
	}
	_, err := k.client.AppsV1().ReplicaSets(rs.Namespace).Patch(ctx, rs.Name, types.MergePatchType, statusPatch(st), metav1.PatchOptions{}, "status")
	return err
}

type replicationControllers struct {
	client  kubernetes.Interface
	factory informers.SharedInformerFactory
}

func (replicationControllers) gvk() schema.GroupVersionKind {
	return corev1.SchemeGroupVersion.WithKind("ReplicationController")
}
func (k replicationControllers) informer() cache.SharedIndexInformer {
	return k.factory.Core().V1().ReplicationControllers().Informer()
}

func rcView(rc *corev1.ReplicationController) *Set {
	sel := labels.Nothing()
	if len(rc.Spec.Selector) > 0 {
		sel = labels.SelectorFromSet(rc.Spec.Selector)
	}
	replicas := int32(1)
	if rc.Spec.Replicas != nil {
		replicas = *rc.Spec.Replicas
	}
	tmpl := rc.Spec.Template
	if tmpl == nil {
		tmpl = &corev1.PodTemplateSpec{}
	}
	st := rc.Status
	return &Set{Obj: rc, Meta: rc, Replicas: replicas, Selector: sel, Template: tmpl,
		MinReadySeconds: rc.Spec.MinReadySeconds,
		Status:          Status{st.Replicas, st.FullyLabeledReplicas, st.ReadyReplicas, st.AvailableReplicas, st.ObservedGeneration}}
}

func (k replicationControllers) get(ns, name string) (*Set, error) {
	rc, err := k.factory.Core().V1().ReplicationControllers().Lister().ReplicationControllers(ns).Get(name)
	if err != nil {
		return nil, err
	}
	return rcView(rc), nil
}

func (k replicationControllers) list(ns string) ([]*Set, error) {
	all, err := k.factory.Core().V1().ReplicationControllers().Lister().ReplicationControllers(ns).List(labels.Everything())
	out := make([]*Set, 0, len(all))
	for _, rc := range all {
		out = append(out, rcView(rc))
	}
	return out, err
}

func (k replicationControllers) updateStatus(ctx context.Context, s *Set, st Status) error {
	rc := s.Obj.(*corev1.ReplicationController).DeepCopy()
	next := rc.Status
	next.Replicas, next.FullyLabeledReplicas, next.ReadyReplicas = st.Replicas, st.FullyLabeledReplicas, st.ReadyReplicas
	next.AvailableReplicas, next.ObservedGeneration = st.AvailableReplicas, st.ObservedGeneration
	if equality.Semantic.DeepEqual(next, rc.Status) {
		return nil
	}
	_, err := k.client.CoreV1().ReplicationControllers(rc.Namespace).Patch(ctx, rc.Name, types.MergePatchType, statusPatch(st), metav1.PatchOptions{}, "status")
	return err
}
