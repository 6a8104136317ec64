// Package deployment is the Deployment controller: it owns one ReplicaSet
// per distinct pod template (named <deployment>-<pod-template-hash>),
// numbers them with the deployment.kubernetes.io/revision annotation, and
// moves replicas from old to new ReplicaSets by the RollingUpdate
// arithmetic in rolling.go or, for Recreate, all at once. kubectl's
// rollout history/undo/restart/pause/resume work from these annotations
// and labels; rollout status from the status and conditions computed in
// status.go.
package deployment

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
)

var deploymentKind = appsv1.SchemeGroupVersion.WithKind("Deployment")

// Config of the controller. Zero values take defaults.
type Config struct {
	Workers int            // concurrent syncs (default 5)
	Now     ctrlutil.Clock // default time.Now
}

// Controller reconciles Deployments.
type Controller struct {
	client      kubernetes.Interface
	cfg         Config
	deployments appslisters.DeploymentLister
	rsets       appslisters.ReplicaSetLister
	pods        listersv1.PodLister
	loop        *ctrlutil.Loop
	recorder    record.EventRecorder
}

// New returns the Deployment controller.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config) *Controller {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	dInf := factory.Apps().V1().Deployments()
	rsInf := factory.Apps().V1().ReplicaSets()
	podInf := factory.Core().V1().Pods()
	c := &Controller{
		client: client, cfg: cfg,
		deployments: dInf.Lister(), rsets: rsInf.Lister(), pods: podInf.Lister(),
		loop: ctrlutil.NewLoop("deployment", cfg.Workers, 5),
	}
	c.loop.WatchKeys(dInf.Informer())
	c.loop.Watch(rsInf.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onReplicaSet,
		UpdateFunc: func(_, n any) { c.onReplicaSet(n) },
		DeleteFunc: c.onReplicaSet,
	})
	// Recreate waits for old pods to be gone: their deletion is news.
	c.loop.Watch(podInf.Informer(), cache.ResourceEventHandlerFuncs{DeleteFunc: c.onPodDeleted})
	return c
}

func (c *Controller) onPodDeleted(obj any) {
	pod, ok := ctrlutil.Unwrap[*corev1.Pod](obj)
	if !ok {
		return
	}
	rsName, ok := ctrlutil.OwnerKey(pod, "ReplicaSet")
	if !ok {
		return
	}
	ns, name, _ := cache.SplitMetaNamespaceKey(rsName)
	if rs, err := c.rsets.ReplicaSets(ns).Get(name); err == nil {
		c.onReplicaSet(rs)
	}
}

func (c *Controller) onReplicaSet(obj any) {
	rs, ok := ctrlutil.Unwrap[*appsv1.ReplicaSet](obj)
	if !ok {
		return
	}
	if metav1.GetControllerOfNoCopy(rs) != nil {
		if key, ok := ctrlutil.OwnerKey(rs, deploymentKind.Kind); ok {
			c.loop.Queue.Add(key)
		}
		return
	}
	ds, _ := c.deployments.Deployments(rs.Namespace).List(labels.Everything())
	for _, d := range ds {
		if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil && !sel.Empty() && sel.Matches(labels.Set(rs.Labels)) {
			c.loop.Queue.Add(rs.Namespace + "/" + d.Name)
		}
	}
}

// Run syncs deployments until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	c.recorder = ctrlutil.NewRecorder(ctx, c.client, "deployment-controller")
	return c.loop.Run(ctx, ctrlutil.ObjectSync(c.getDeployment, nil, c.sync))
}

func (c *Controller) getDeployment(ns, name string) (*appsv1.Deployment, error) {
	return c.deployments.Deployments(ns).Get(name)
}

func (c *Controller) sync(ctx context.Context, key string, d *appsv1.Deployment) error {
	if d.DeletionTimestamp != nil {
		return nil
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() {
		c.recorder.Event(d, corev1.EventTypeWarning, "SelectingAll", "This deployment is selecting all pods. A non-empty selector is required.")
		return nil
	}
	owned, err := c.claim(ctx, d, sel)
	if err != nil {
		return err
	}
	var newRS *appsv1.ReplicaSet
	var old []*appsv1.ReplicaSet
	byRevision(owned)
	for _, rs := range owned {
		if newRS == nil && EqualIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
			newRS = rs
			continue
		}
		old = append(old, rs)
	}
	s := &step{c: c, d: d, newRS: newRS, old: old}
	if err := s.run(ctx); err != nil {
		return err
	}
	d = s.d // annotations may have been updated
	all := append([]*appsv1.ReplicaSet{}, s.old...)
	if s.newRS != nil {
		all = append(all, s.newRS)
	}
	unavail := int32(0)
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		_, unavail, _ = ResolveFenceposts(d.Spec.Strategy.RollingUpdate, desired(d))
	}
	st, recheck := CalculateStatus(d, s.newRS, all, unavail, s.progressed, c.cfg.Now())
	if !equality.Semantic.DeepEqual(st, d.Status) {
		if err := ctrlutil.PatchStatus(ctx, c.client.AppsV1().Deployments(d.Namespace), d.Name, map[string]any{
			"observedGeneration": st.ObservedGeneration, "replicas": st.Replicas, "updatedReplicas": st.UpdatedReplicas,
			"readyReplicas": st.ReadyReplicas, "availableReplicas": st.AvailableReplicas,
			"unavailableReplicas": st.UnavailableReplicas, "conditions": st.Conditions,
		}); err != nil {
			return err
		}
	}
	if recheck > 0 {
		c.loop.Queue.AddAfter(key, recheck+time.Second)
	}
	return c.cleanup(ctx, d, s.old)
}

// claim adopts orphan ReplicaSets matching the selector, releases owned
// ones that stopped matching, and returns the owned ones.
func (c *Controller) claim(ctx context.Context, d *appsv1.Deployment, sel labels.Selector) ([]*appsv1.ReplicaSet, error) {
	all, err := c.rsets.ReplicaSets(d.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	return ctrlutil.ClaimChildren(d, deploymentKind, sel, false, all, func(rs *appsv1.ReplicaSet, patch []byte) error {
		_, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Patch(ctx, rs.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		if err != nil {
			return fmt.Errorf("claim replicaset %s/%s: %w", rs.Namespace, rs.Name, err)
		}
		return nil
	})
}

// cleanup deletes the oldest fully scaled-down ReplicaSets beyond
// revisionHistoryLimit.
func (c *Controller) cleanup(ctx context.Context, d *appsv1.Deployment, old []*appsv1.ReplicaSet) error {
	limit := int32(defaultRevisionHistoryLim)
	if d.Spec.RevisionHistoryLimit != nil {
		limit = *d.Spec.RevisionHistoryLimit
	}
	var idle []*appsv1.ReplicaSet
	for _, rs := range old {
		if rs.Spec.Replicas != nil && *rs.Spec.Replicas == 0 && rs.Status.Replicas == 0 && rs.DeletionTimestamp == nil {
			idle = append(idle, rs)
		}
	}
	for i := 0; i < len(idle)-int(limit); i++ {
		rs := idle[i]
		err := c.client.AppsV1().ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &rs.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete old replicaset %s: %w", rs.Name, err)
		}
	}
	return nil
}
