// Package replicaset is the ReplicaSet and ReplicationController
// controller: one core (Decide) that keeps the number of active pods
// matching a set's selector equal to its replicas, adopting matching
// orphans and releasing pods that stopped matching. The two kinds are
// adapted to the core through the narrow kind interface.
package replicaset

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/hoist-project/hoist/internal/informers"
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
	loop     *ctrlutil.Loop
	exp      *ctrlutil.Expectations
	recorder record.EventRecorder
}

// New returns the ReplicaSet controller.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config) *Controller {
	return newController(client, factory, cfg, replicaSets(client, factory))
}

// NewReplicationController returns the ReplicationController controller.
func NewReplicationController(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config) *Controller {
	return newController(client, factory, cfg, replicationControllers(client, factory))
}

func newController(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config, k kind) *Controller {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	podInf := factory.Core().V1().Pods()
	c := &Controller{
		client: client, kind: k, cfg: cfg,
		pods: podInf.Lister(),
		loop: ctrlutil.NewLoop(k.gvk().Kind, cfg.Workers, 5),
		exp:  ctrlutil.NewExpectations(cfg.Now),
	}
	c.loop.WatchKeys(k.informer())
	pods := ctrlutil.PodHandler(c.onPod)
	// A label change may move a pod between sets: the sets matching the old
	// labels hear of it too.
	pods.UpdateFunc = func(old, n any) {
		c.onPod(old.(*corev1.Pod), 0, 0)
		c.onPod(n.(*corev1.Pod), 0, ctrlutil.StartedDeleting(old, n))
	}
	c.loop.Watch(podInf.Informer(), pods)
	return c
}

// onPod enqueues the pod's controller, or for orphans every set whose
// selector matches, and records observed creations/deletions.
func (c *Controller) onPod(pod *corev1.Pod, added, deleted int) {
	if metav1.GetControllerOfNoCopy(pod) != nil {
		ctrlutil.ObserveOwner(c.loop.Queue, c.exp, c.kind.gvk().Kind)(pod, added, deleted)
		return
	}
	sets, _ := c.kind.list(pod.Namespace)
	for _, s := range sets {
		if s.Selector.Matches(labels.Set(pod.Labels)) {
			c.loop.Queue.Add(pod.Namespace + "/" + s.Meta.GetName())
		}
	}
}

// Run syncs sets until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	c.recorder = ctrlutil.NewRecorder(ctx, c.client, "replicaset-controller")
	return c.loop.Run(ctx, ctrlutil.ObjectSync(c.kind.get, c.exp.Gone, c.sync))
}

func (c *Controller) sync(ctx context.Context, key string, set *Set) error {
	owned, err := c.claim(ctx, set)
	if err != nil {
		return err
	}
	plan := Decide(set, owned, c.exp.Satisfied(key), c.cfg.Now())
	pc := ctrlutil.PodControl{Client: c.client, Exp: c.exp, Recorder: c.recorder}
	errs := []error{
		pc.CreatePods(ctx, key, set.Obj, plan.Create, func(int) *corev1.Pod { return c.podFor(set) }),
		pc.DeletePods(ctx, key, set.Obj, plan.Delete),
	}
	if plan.Status != set.Status {
		errs = append(errs, c.kind.patchStatus(ctx, set, plan.Status))
	}
	if plan.Requeue > 0 {
		c.loop.Queue.AddAfter(key, plan.Requeue)
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
	return ctrlutil.ClaimChildren(set.Meta, c.kind.gvk(), set.Selector, deleting, all, func(pod *corev1.Pod, patch []byte) error {
		_, err := c.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		if err != nil {
			return fmt.Errorf("claim pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		return nil
	})
}

// podFor builds a new pod of set from its template.
func (c *Controller) podFor(set *Set) *corev1.Pod {
	tmpl := set.Template
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    set.Meta.GetName() + "-",
			Namespace:       set.Meta.GetNamespace(),
			Labels:          tmpl.Labels,
			Annotations:     tmpl.Annotations,
			Finalizers:      tmpl.Finalizers,
			OwnerReferences: []metav1.OwnerReference{ctrlutil.ControllerRef(set.Meta, c.kind.gvk())},
		},
		Spec: *tmpl.Spec.DeepCopy(),
	}
}
