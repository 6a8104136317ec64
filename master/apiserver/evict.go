package apiserver

import (
	"encoding/json"
	"fmt"
	"k8s.io/apimachinery/pkg/fields"
	"net/http"
	"time"

	"github.com/hoist-project/hoist/master/disruptionbudget"
	"github.com/hoist-project/hoist/master/registry"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// evict serves pods/{name}/eviction: it deletes the pod unless that would
// take a PodDisruptionBudget below its healthy minimum (429).
func (h *handler) evict() error {
	body, err := h.readBody()
	if err != nil {
		return err
	}
	var ev policyv1.Eviction // policy/v1 and v1beta1 have the same shape
	if err := json.Unmarshal(body, &ev); err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("invalid Eviction: %v", err))
	}
	if ev.Name != "" && ev.Name != h.info.Name {
		return apierrors.NewBadRequest(fmt.Sprintf("name in URL does not match name in Eviction object: %s vs %s", h.info.Name, ev.Name))
	}
	obj, err := h.st.Get(h.ctx(), h.ns, h.info.Name)
	if err != nil {
		return err
	}
	pod := obj.(*corev1.Pod)
	done := func() error {
		opts := ev.DeleteOptions
		if opts == nil {
			opts = &metav1.DeleteOptions{}
		}
		if h.dryRun() {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		if _, err := h.deleteOne(h.info.Name, opts); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		return h.respondPlain(http.StatusCreated, &metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
			Status: metav1.StatusSuccess, Code: http.StatusCreated})
	}
	if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return done() // nothing a budget protects
	}
	pdbStore := h.s.stores[policyv1.SchemeGroupVersion.WithResource("poddisruptionbudgets")]
	// The disruption controller writes the budget's status too: a conflict
	// means "read the budget again and recheck", as upstream retries it,
	// because kubectl drain gives up on anything but 429.
	var spendErr error
	for range evictionConflictRetries {
		pdbs, err := h.budgetsFor(pdbStore, pod)
		if err != nil {
			return err
		}
		switch len(pdbs) {
		case 0:
			return done()
		case 1:
		default:
			return apierrors.NewInternalError(fmt.Errorf("this pod has more than one PodDisruptionBudget, which the eviction subresource does not support"))
		}
		if spendErr = h.spendBudget(pdbStore, pdbs[0], pod); !apierrors.IsConflict(spendErr) {
			break
		}
	}
	if spendErr != nil {
		return spendErr
	}
	return done()
}

// evictionConflictRetries bounds the re-reads of a budget that changed
// under an eviction (upstream: 5).
const evictionConflictRetries = 5

func (h *handler) budgetsFor(pdbStore *registry.Store, pod *corev1.Pod) ([]*policyv1.PodDisruptionBudget, error) {
	list, err := pdbStore.List(h.ctx(), h.ns, registry.ListOptions{Filter: registry.Filter{Labels: labels.Everything(), Fields: everythingFields()}})
	if err != nil {
		return nil, err
	}
	items, _ := meta.ExtractList(list)
	var out []*policyv1.PodDisruptionBudget
	for _, it := range items {
		pdb := it.(*policyv1.PodDisruptionBudget)
		if pdb.Spec.Selector == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		out = append(out, pdb)
	}
	return out, nil
}

// spendBudget records the eviction in the budget's status (compare-and-swap
// on the budget, so two evictions cannot spend one disruption) or answers
// 429 naming the pod and the budget.
func (h *handler) spendBudget(pdbStore *registry.Store, pdb *policyv1.PodDisruptionBudget, pod *corev1.Pod) error {
	podStore := h.s.stores[corev1.SchemeGroupVersion.WithResource("pods")]
	sel, _ := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	list, err := podStore.List(h.ctx(), h.ns, registry.ListOptions{Filter: registry.Filter{Labels: sel, Fields: everythingFields()}})
	if err != nil {
		return err
	}
	items, _ := meta.ExtractList(list)
	now := time.Now()
	pods := make([]*corev1.Pod, 0, len(items))
	for _, it := range items {
		pods = append(pods, it.(*corev1.Pod))
	}
	st := disruptionbudget.Status(pdb, pods, now)
	healthy, desired, expected := st.CurrentHealthy, st.DesiredHealthy, st.ExpectedPods
	podHealthy := disruptionbudget.Healthy(pdb, pod, now)
	allowed := healthy - desired
	if (podHealthy && allowed <= 0) || (!podHealthy && healthy < desired) {
		// No retry hint, as upstream: kubectl drain retries on its own
		// schedule, and a Retry-After would make client-go retry first.
		err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
		err.ErrStatus.Details.Name = pod.Name
		err.ErrStatus.Details.Kind = "pods"
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
			Type:    "DisruptionBudget",
			Message: fmt.Sprintf("The disruption budget %s needs %d healthy pods and has %d currently (evicting pod %s)", pdb.Name, desired, healthy, pod.Name),
		})
		return err
	}
	if !podHealthy {
		return nil // evicting an unhealthy pod spends nothing
	}
	_, err = pdbStore.GuaranteedUpdate(h.ctx(), h.ns, pdb.Name, "status", h.dryRun(), pdb.ResourceVersion, func(old runtime.Object) (runtime.Object, error) {
		p := old.(*policyv1.PodDisruptionBudget)
		if p.Status.DisruptedPods == nil {
			p.Status.DisruptedPods = map[string]metav1.Time{}
		}
		p.Status.DisruptedPods[pod.Name] = metav1.NewTime(now)
		p.Status.DisruptionsAllowed = allowed - 1
		p.Status.CurrentHealthy, p.Status.DesiredHealthy, p.Status.ExpectedPods = healthy-1, desired, expected
		p.Status.ObservedGeneration = p.Generation
		return p, nil
	})
	return err // a conflict: the caller reads the budget again
}

func everythingFields() fields.Selector { return fields.Everything() }
