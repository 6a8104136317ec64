package replicaset

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
)

// Status is the part of the status both kinds share.
type Status struct {
	Replicas, FullyLabeledReplicas, ReadyReplicas, AvailableReplicas int32
	ObservedGeneration                                               int64
}

// fields spells out every status field for a merge patch.
func (st Status) fields() map[string]any {
	return map[string]any{
		"replicas": st.Replicas, "fullyLabeledReplicas": st.FullyLabeledReplicas, "readyReplicas": st.ReadyReplicas,
		"availableReplicas": st.AvailableReplicas, "observedGeneration": st.ObservedGeneration,
	}
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
	// patchStatus writes st to the set's status subresource.
	patchStatus(ctx context.Context, s *Set, st Status) error
}

// kindOf is a kind for the API type T: the lister and client calls of T
// plus view, which maps a T to a Set.
type kindOf[T metav1.Object] struct {
	kindGVK schema.GroupVersionKind
	inf     cache.SharedIndexInformer
	getFn   func(ns, name string) (T, error)
	listFn  func(ns string) ([]T, error)
	view    func(T) *Set
	patcher func(ns string) ctrlutil.StatusPatcher[T]
}

func (k kindOf[T]) gvk() schema.GroupVersionKind        { return k.kindGVK }
func (k kindOf[T]) informer() cache.SharedIndexInformer { return k.inf }

func (k kindOf[T]) get(ns, name string) (*Set, error) {
	obj, err := k.getFn(ns, name)
	if err != nil {
		return nil, err
	}
	return k.view(obj), nil
}

func (k kindOf[T]) list(ns string) ([]*Set, error) {
	all, err := k.listFn(ns)
	out := make([]*Set, 0, len(all))
	for _, obj := range all {
		out = append(out, k.view(obj))
	}
	return out, err
}

func (k kindOf[T]) patchStatus(ctx context.Context, s *Set, st Status) error {
	return ctrlutil.PatchStatus(ctx, k.patcher(s.Meta.GetNamespace()), s.Meta.GetName(), st.fields())
}

func replicaSets(client kubernetes.Interface, factory informers.SharedInformerFactory) kind {
	inf := factory.Apps().V1().ReplicaSets()
	return kindOf[*appsv1.ReplicaSet]{
		kindGVK: appsv1.SchemeGroupVersion.WithKind("ReplicaSet"),
		inf:     inf.Informer(),
		getFn:   func(ns, name string) (*appsv1.ReplicaSet, error) { return inf.Lister().ReplicaSets(ns).Get(name) },
		listFn: func(ns string) ([]*appsv1.ReplicaSet, error) {
			return inf.Lister().ReplicaSets(ns).List(labels.Everything())
		},
		view: rsView,
		patcher: func(ns string) ctrlutil.StatusPatcher[*appsv1.ReplicaSet] {
			return client.AppsV1().ReplicaSets(ns)
		},
	}
}

func replicationControllers(client kubernetes.Interface, factory informers.SharedInformerFactory) kind {
	inf := factory.Core().V1().ReplicationControllers()
	return kindOf[*corev1.ReplicationController]{
		kindGVK: corev1.SchemeGroupVersion.WithKind("ReplicationController"),
		inf:     inf.Informer(),
		getFn: func(ns, name string) (*corev1.ReplicationController, error) {
			return inf.Lister().ReplicationControllers(ns).Get(name)
		},
		listFn: func(ns string) ([]*corev1.ReplicationController, error) {
			return inf.Lister().ReplicationControllers(ns).List(labels.Everything())
		},
		view: rcView,
		patcher: func(ns string) ctrlutil.StatusPatcher[*corev1.ReplicationController] {
			return client.CoreV1().ReplicationControllers(ns)
		},
	}
}

func rsView(rs *appsv1.ReplicaSet) *Set {
	sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil || rs.Spec.Selector == nil {
		sel = labels.Nothing()
	}
	st := rs.Status
	return &Set{Obj: rs, Meta: rs, Replicas: replicasOrOne(rs.Spec.Replicas), Selector: sel, Template: &rs.Spec.Template,
		MinReadySeconds: rs.Spec.MinReadySeconds,
		Status:          Status{st.Replicas, st.FullyLabeledReplicas, st.ReadyReplicas, st.AvailableReplicas, st.ObservedGeneration}}
}

func rcView(rc *corev1.ReplicationController) *Set {
	sel := labels.Nothing()
	if len(rc.Spec.Selector) > 0 {
		sel = labels.SelectorFromSet(rc.Spec.Selector)
	}
	tmpl := rc.Spec.Template
	if tmpl == nil {
		tmpl = &corev1.PodTemplateSpec{}
	}
	st := rc.Status
	return &Set{Obj: rc, Meta: rc, Replicas: replicasOrOne(rc.Spec.Replicas), Selector: sel, Template: tmpl,
		MinReadySeconds: rc.Spec.MinReadySeconds,
		Status:          Status{st.Replicas, st.FullyLabeledReplicas, st.ReadyReplicas, st.AvailableReplicas, st.ObservedGeneration}}
}

// replicasOrOne is spec.replicas with the API default of 1.
func replicasOrOne(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}
