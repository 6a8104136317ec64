// Package disruption keeps PodDisruptionBudget status current:
// expectedPods, currentHealthy, desiredHealthy, disruptionsAllowed, the
// DisruptionAllowed condition and the expiry of disruptedPods entries, so
// `kubectl get pdb` and `kubectl drain` see what the eviction API enforces.
// The counting rules are the eviction handler's (see Status).
package disruption

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	policylisters "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
	"github.com/hoist-project/hoist/master/disruptionbudget"
)

// Config of the controller.
type Config struct {
	Workers int            // concurrent syncs (default 2)
	Now     ctrlutil.Clock // default time.Now
}

// Controller is the PodDisruptionBudget status controller.
type Controller struct {
	client kubernetes.Interface
	cfg    Config
	pdbs   policylisters.PodDisruptionBudgetLister
	pods   listersv1.PodLister
	loop   *ctrlutil.Loop
}

// New returns the controller.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config) *Controller {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pdbInf, podInf := factory.Policy().V1().PodDisruptionBudgets(), factory.Core().V1().Pods()
	c := &Controller{client: client, cfg: cfg, pdbs: pdbInf.Lister(), pods: podInf.Lister(),
		loop: ctrlutil.NewLoop("disruption", cfg.Workers, 2)}
	c.loop.WatchKeys(pdbInf.Informer())
	c.loop.Watch(podInf.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onPod,
		UpdateFunc: func(o, n any) { c.onPod(o); c.onPod(n) },
		DeleteFunc: c.onPod,
	})
	return c
}

// onPod queues the budgets of the pod's namespace that select it.
func (c *Controller) onPod(obj any) {
	pod, ok := ctrlutil.Unwrap[*corev1.Pod](obj)
	if !ok {
		return
	}
	pdbs, _ := c.pdbs.PodDisruptionBudgets(pod.Namespace).List(labels.Everything())
	for _, pdb := range pdbs {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err == nil && sel.Matches(labels.Set(pod.Labels)) {
			c.loop.Queue.Add(pdb.Namespace + "/" + pdb.Name)
		}
	}
}

// Run syncs budgets until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	return c.loop.Run(ctx, ctrlutil.ObjectSync(c.get, nil, c.sync))
}

func (c *Controller) get(ns, name string) (*policyv1.PodDisruptionBudget, error) {
	return c.pdbs.PodDisruptionBudgets(ns).Get(name)
}

func (c *Controller) sync(ctx context.Context, key string, pdb *policyv1.PodDisruptionBudget) error {
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		return nil // the API validates selectors; nothing to count with a broken one
	}
	var pods []*corev1.Pod
	if !sel.Empty() {
		if pods, err = c.pods.Pods(pdb.Namespace).List(sel); err != nil {
			return err
		}
	}
	now := c.cfg.Now()
	st := disruptionbudget.Status(pdb, pods, now)
	if disruptionbudget.Changed(pdb.Status, st) {
		cp := pdb.DeepCopy()
		cp.Status = st
		// An update of the cached version: an eviction that spent the
		// budget meanwhile makes this a conflict, and the retry recounts.
		if _, err := c.client.PolicyV1().PodDisruptionBudgets(pdb.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	// Recount when the oldest disruptedPods entry expires.
	var next time.Duration
	for _, t := range st.DisruptedPods {
		if left := t.Add(disruptionbudget.DisruptedPodTTL).Sub(now); next == 0 || left < next {
			next = left
		}
	}
	if next > 0 {
		c.loop.Queue.AddAfter(key, next)
	}
	return nil
}
