package apiserver

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/hoist-project/hoist/master/registry"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func fieldRequired(path, detail string) field.ErrorList {
	return field.ErrorList{field.Required(field.NewPath(path), detail)}
}

// gracePeriod returns the deletion grace period policy of a resource: pods
// bound to a node terminate gracefully, everything else goes at once.
func gracePeriod(res *registry.Resource) func(runtime.Object, *int64) int64 {
	if res.Kind != "Pod" {
		return nil
	}
	return func(obj runtime.Object, requested *int64) int64 {
		p := obj.(*corev1.Pod)
		if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			return 0
		}
		g := int64(corev1.DefaultTerminationGracePeriodSeconds)
		if p.Spec.TerminationGracePeriodSeconds != nil {
			g = *p.Spec.TerminationGracePeriodSeconds
		}
		if requested != nil {
			g = *requested
		}
		if g < 0 {
			g = 1
		}
		return g
	}
}

// scaleOf renders obj's /scale view.
func scaleOf(res *registry.Resource, obj runtime.Object) *autoscalingv1.Scale {
	acc, _ := meta.Accessor(obj)
	spec, status, sel := res.Scale.Get(obj)
	return &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"},
		ObjectMeta: metav1.ObjectMeta{Name: acc.GetName(), Namespace: acc.GetNamespace(), UID: acc.GetUID(),
			ResourceVersion: acc.GetResourceVersion(), CreationTimestamp: acc.GetCreationTimestamp()},
		Spec:   autoscalingv1.ScaleSpec{Replicas: spec},
		Status: autoscalingv1.ScaleStatus{Replicas: status, Selector: sel},
	}
}

// scaleUpdate writes the replicas of a Scale computed from the current one.
func (h *handler) scaleUpdate(precondition string, next func(cur *autoscalingv1.Scale) (*autoscalingv1.Scale, error)) error {
	res := h.st.Res
	var out *autoscalingv1.Scale
	saved, err := h.st.GuaranteedUpdate(h.ctx(), h.ns, h.info.Name, "", h.dryRun(), precondition, func(old runtime.Object) (runtime.Object, error) {
		sc, err := next(scaleOf(res, old))
		if err != nil {
			return nil, err
		}
		if sc.Spec.Replicas < 0 {
			return nil, apierrors.NewInvalid(autoscalingv1.SchemeGroupVersion.WithKind("Scale").GroupKind(), h.info.Name,
				field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), sc.Spec.Replicas, "must be greater than or equal to 0")})
		}
		res.Scale.Set(old, sc.Spec.Replicas)
		return old, nil
	})
	if err != nil {
		return err
	}
	out = scaleOf(res, saved)
	return h.respondPlain(http.StatusOK, out)
}

func (h *handler) updateScale(body []byte) error {
	obj, err := h.decodeBody(autoscalingv1.SchemeGroupVersion.WithKind("Scale"), body)
	if err != nil {
		return err
	}
	want := obj.(*autoscalingv1.Scale)
	return h.scaleUpdate(want.ResourceVersion, func(*autoscalingv1.Scale) (*autoscalingv1.Scale, error) { return want, nil })
}

// bind assigns a pod to a node (pods/binding), once.
func (h *handler) bind() error {
	body, err := h.readBody()
	if err != nil {
		return err
	}
	obj, err := h.decodeBody(corev1.SchemeGroupVersion.WithKind("Binding"), body)
	if err != nil {
		return err
	}
	b := obj.(*corev1.Binding)
	if b.Target.Name == "" {
		return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Binding").GroupKind(), b.Name, fieldRequired("target.name", ""))
	}
	_, err = h.st.GuaranteedUpdate(h.ctx(), h.ns, h.info.Name, "", h.dryRun(), "", func(old runtime.Object) (runtime.Object, error) {
		p := old.(*corev1.Pod)
		if p.DeletionTimestamp != nil {
			return nil, apierrors.NewConflict(corev1.Resource("pods/binding"), p.Name, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", p.Name))
		}
		if p.Spec.NodeName != "" {
			return nil, apierrors.NewConflict(corev1.Resource("pods/binding"), p.Name, fmt.Errorf("pod %s is already assigned to node %q", p.Name, p.Spec.NodeName))
		}
		p.Spec.NodeName = b.Target.Name
		for k, v := range b.Annotations {
			if p.Annotations == nil {
				p.Annotations = map[string]string{}
			}
			p.Annotations[k] = v
		}
		setPodCondition(p, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()})
		return p, nil
	})
	if err != nil {
		return err
	}
	st := &metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusSuccess, Code: http.StatusCreated}
	return h.respondPlain(http.StatusCreated, st)
}

func setPodCondition(p *corev1.Pod, c corev1.PodCondition) {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == c.Type {
			p.Status.Conditions[i] = c
			return
		}
	}
	p.Status.Conditions = append(p.Status.Conditions, c)
}

// scaleJSON is the JSON of a Scale, for patching.
func scaleJSON(s *autoscalingv1.Scale) ([]byte, error) { return json.Marshal(s) }
