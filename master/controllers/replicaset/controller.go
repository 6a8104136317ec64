// Package replicaset is the ReplicaSet and ReplicationController
// controller: one core (Decide) that keeps the number of active pods
// matching a set's selector equal to its replicas, adopting matching
// orphans and releasing pods that stopped matching. The two kinds are
// adapted to the core through the narrow kind interface.
package replicaset

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
)

// Config of the controller. Zero values take defaults.
type Config struct {
	Workers int            // concurrent syncs (default 5)
	Now     ctrlutil.Clock // default time.Now
}

// Controller reconciles one kind of replicated set.
type Controller struct {
	client   kubernetes.Interface
	kind     kind
	cfg      Config
	pods     listersv1.PodLister
	queue    ctrlutil.Queue
	exp      *ctrlutil.Expectations
	synced   []cache.InformerSynced
	recorder record.EventRecorder
}

// New returns the ReplicaSet controller.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config) *Controller {
	return newController(client, factory, cfg, replicaSets{client, factory})
}

// NewReplicationController returns the ReplicationController controller.
func NewReplicationController(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config) *Controller {
	return newController(client, factory, cfg, replicationControllers{client, factory})
}

func newController(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config, k kind) *Controller {
	if cfg.Workers <= 0 {
		cfg.Workers = 5
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	podInf := factory.Core().V1().Pods()
	c := &Controller{
		client: client, kind: k, cfg: cfg,
		pods:  podInf.Lister(),
		queue: ctrlutil.NewQueue(k.gvk().Kind),
		exp:   ctrlutil.NewExpectations(cfg.Now),
	}
	c.synced = []cache.InformerSynced{podInf.Informer().HasSynced, k.informer().HasSynced}
	k.informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { ctrlutil.Enqueue(c.queue, o) },
		UpdateFunc: func(_, n any) { ctrlutil.Enqueue(c.queue, n) },
		DeleteFunc: func(o any) { ctrlutil.Enqueue(c.queue, o) },
	})
	podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { c.onPod(o, true, false) },
		UpdateFunc: func(old, n any) {
			// Graceful deletion shows up as an update setting
			// deletionTimestamp: that is when a deletion is observed.
			startedDeleting := old.(*corev1.Pod).DeletionTimestamp == nil && n.(*corev1.Pod).DeletionTimestamp != nil
			c.onPod(old, false, false)
			c.onPod(n, false, startedDeleting)
		},
		DeleteFunc: func(o any) { c.onPod(o, false, true) },
	})
	return c
}

// onPod enqueues the pod's controller, or for orphans every set whose
// selector matches, and records observed creations/deletions.
func (c *Controller) onPod(obj any, added, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		if ref.Kind != c.kind.gvk().Kind {
			return
		}
		key := pod.Namespace + "/" + ref.Name
		if added {
			c.exp.Observed(key, 1, 0)
		}
		if deleted {
			c.exp.Observed(key, 0, 1)
		}
		c.queue.Add(key)
		return
	}
	sets, _ := c.kind.list(pod.Namespace)
	for _, s := range sets {
		if s.Selector.Matches(labels.Set(pod.Labels)) {
			c.queue.Add(pod.Namespace + "/" + s.Meta.GetName())
		}
	}
}

// Run syncs sets until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	c.recorder = ctrlutil.NewRecorder(ctx, c.client, "replicaset-controller")
	return ctrlutil.Run(ctx, c.kind.gvk().Kind, c.queue, c.cfg.Workers, c.sync, c.synced...)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	set, err := c.kind.get(ns, name)
	if apierrors.IsNotFound(err) {
		c.exp.Forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	owned, err := c.claim(ctx, set)
	if err != nil {
		return err
	}
	plan := Decide(set, owned, c.exp.Satisfied(key), c.cfg.Now())
	var errs []error
	if plan.Create > 0 {
		errs = append(errs, c.create(ctx, key, set, plan.Create))
	}
	if len(plan.Delete) > 0 {
		errs = append(errs, c.delete(ctx, key, set, plan.Delete))
	}
	if err := c.kind.updateStatus(ctx, set, plan.Status); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("update status: %w", err))
	}
	if plan.Requeue > 0 {
		c.queue.AddAfter(key, plan.Requeue)
	}
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// claim adopts matching orphans, releases owned pods that stopped matching
// and returns the pods the set owns.
func (c *Controller) claim(ctx context.Context, set *Set) ([]*corev1.Pod, error) {
	all, err := c.pods.Pods(set.Meta.GetNamespace()).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	deleting := set.Meta.GetDeletionTimestamp() != nil
	var owned []*corev1.Pod
	for _, pod := range all {
		var patch []byte
		switch ctrlutil.Decide(pod, set.Meta.GetUID(), set.Selector, deleting) {
		case ctrlutil.Owned:
			owned = append(owned, pod)
			continue
		case ctrlutil.Adopt:
			patch = ctrlutil.AdoptPatch(set.Meta, c.kind.gvk(), pod.UID)
		case ctrlutil.Release:
			patch = ctrlutil.ReleasePatch(set.Meta.GetUID(), pod.UID)
		default:
			continue
		}
		_, err := c.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("claim pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		if err == nil && set.Selector.Matches(labels.Set(pod.Labels)) {
			owned = append(owned, pod) // adopted
		}
	}
	return owned, nil
}

func (c *Controller) create(ctx context.Context, key string, set *Set, n int) error {
	c.exp.Expect(key, n, 0)
	tmpl := set.Template
	ref := ctrlutil.ControllerRef(set.Meta, c.kind.gvk())
	var attempted atomic.Int64
	_, err := ctrlutil.SlowStart(ctx, n, func(ctx context.Context) error {
		attempted.Add(1)
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				GenerateName:    set.Meta.GetName() + "-",
				Namespace:       set.Meta.GetNamespace(),
				Labels:          tmpl.Labels,
				Annotations:     tmpl.Annotations,
				Finalizers:      tmpl.Finalizers,
				OwnerReferences: []metav1.OwnerReference{ref},
			},
			Spec: *tmpl.Spec.DeepCopy(),
		}
		created, err := c.client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			c.exp.Observed(key, 1, 0)
			if !apierrors.IsAlreadyExists(err) {
				c.recorder.Eventf(set.Obj, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
			}
			return err
		}
		c.recorder.Eventf(set.Obj, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", created.Name)
		return nil
	})
	if err != nil {
		// Calls never made will never be observed.
		c.exp.Observed(key, n-int(attempted.Load()), 0)
		return fmt.Errorf("create pods: %w", err)
	}
	return nil
}

func (c *Controller) delete(ctx context.Context, key string, set *Set, pods []*corev1.Pod) error {
	c.exp.Expect(key, 0, len(pods))
	var first error
	for _, pod := range pods {
		err := c.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}})
		if err != nil {
			c.exp.Observed(key, 0, 1)
			if apierrors.IsNotFound(err) {
				continue
			}
			c.recorder.Eventf(set.Obj, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
			if first == nil {
				first = err
			}
			continue
		}
		c.recorder.Eventf(set.Obj, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", pod.Name)
	}
	return first
}
