// Package daemonset is the DaemonSet controller: one pod per eligible node
// (node selector, required node affinity, taints tolerated with the
// default daemon tolerations), pinned to its node through required node
// affinity on metadata.name so the scheduler still checks resources and
// ports. Template changes roll out node by node within maxUnavailable
// (RollingUpdate) or wait for manual deletion (OnDelete). Decisions are the
// pure Decide in core.go.
package daemonset

import (
	"context"
	"errors"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
	"github.com/hoist-project/hoist/master/controllers/history"
)

var daemonSetKind = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

// Config of the controller. Zero values take defaults.
type Config struct {
	Workers int            // concurrent syncs (default 2)
	Now     ctrlutil.Clock // default time.Now
}

// Controller reconciles DaemonSets.
type Controller struct {
	client   kubernetes.Interface
	cfg      Config
	sets     appslisters.DaemonSetLister
	pods     listersv1.PodLister
	nodes    listersv1.NodeLister
	revs     appslisters.ControllerRevisionLister
	loop     *ctrlutil.Loop
	exp      *ctrlutil.Expectations
	recorder record.EventRecorder
}

// New returns the controller.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config) *Controller {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	dsInf := factory.Apps().V1().DaemonSets()
	podInf := factory.Core().V1().Pods()
	nodeInf := factory.Core().V1().Nodes()
	revInf := factory.Apps().V1().ControllerRevisions()
	c := &Controller{
		client: client, cfg: cfg,
		sets: dsInf.Lister(), pods: podInf.Lister(), nodes: nodeInf.Lister(), revs: revInf.Lister(),
		loop: ctrlutil.NewLoop("daemonset", cfg.Workers, 2),
		exp:  ctrlutil.NewExpectations(cfg.Now),
	}
	c.loop.WatchKeys(dsInf.Informer())
	c.loop.Watch(podInf.Informer(), ctrlutil.PodHandler(ctrlutil.ObserveOwner(c.loop.Queue, c.exp, daemonSetKind.Kind)))
	c.loop.Watch(revInf.Informer(), history.OwnerHandler(c.loop.Queue, daemonSetKind.Kind))
	// Any node change may change where daemons belong.
	c.loop.Watch(nodeInf.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.enqueueAll() },
		UpdateFunc: func(o, n any) { c.onNodeUpdate(o.(*corev1.Node), n.(*corev1.Node)) },
		DeleteFunc: func(any) { c.enqueueAll() },
	})
	return c
}

func (c *Controller) onNodeUpdate(old, cur *corev1.Node) {
	if !equality.Semantic.DeepEqual(old.Labels, cur.Labels) || !equality.Semantic.DeepEqual(old.Spec.Taints, cur.Spec.Taints) {
		c.enqueueAll()
	}
}

func (c *Controller) enqueueAll() {
	all, _ := c.sets.List(labels.Everything())
	for _, ds := range all {
		c.loop.Queue.Add(ds.Namespace + "/" + ds.Name)
	}
}

// Run syncs DaemonSets until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	c.recorder = ctrlutil.NewRecorder(ctx, c.client, "daemonset-controller")
	return c.loop.Run(ctx, ctrlutil.ObjectSync(c.getSet, c.exp.Gone, c.sync))
}

func (c *Controller) getSet(ns, name string) (*appsv1.DaemonSet, error) {
	return c.sets.DaemonSets(ns).Get(name)
}

func (c *Controller) sync(ctx context.Context, key string, ds *appsv1.DaemonSet) error {
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || sel.Empty() {
		c.recorder.Event(ds, corev1.EventTypeWarning, "SelectingAll", "This daemon set is selecting all pods. A non-empty selector is required.")
		return nil
	}
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	pods, err := c.pods.Pods(ds.Namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	byNode := map[string][]*corev1.Pod{}
	for _, pod := range pods {
		if ref := metav1.GetControllerOfNoCopy(pod); ref != nil && ref.UID == ds.UID && sel.Matches(labels.Set(pod.Labels)) {
			byNode[podNode(pod)] = append(byNode[podNode(pod)], pod)
		}
	}
	hash := ctrlutil.TemplateHash(&ds.Spec.Template, ds.Status.CollisionCount)
	deleting := ds.DeletionTimestamp != nil
	var errs []error
	if !deleting {
		errs = append(errs, c.syncHistory(ctx, ds, sel, hash, byNode))
	}
	plan := Decide(ds, nodes, byNode, hash, c.exp.Satisfied(key) && !deleting, c.cfg.Now())
	pc := ctrlutil.PodControl{Client: c.client, Exp: c.exp, Recorder: c.recorder}
	errs = append(errs,
		pc.CreatePods(ctx, key, ds, len(plan.Create), func(i int) *corev1.Pod { return podFor(ds, hash, plan.Create[i]) }),
		pc.DeletePods(ctx, key, ds, plan.Delete),
	)
	plan.Status.CollisionCount = ds.Status.CollisionCount
	if !equality.Semantic.DeepEqual(plan.Status, ds.Status) {
		st := plan.Status
		errs = append(errs, ctrlutil.PatchStatus(ctx, c.client.AppsV1().DaemonSets(ds.Namespace), ds.Name, map[string]any{
			"desiredNumberScheduled": st.DesiredNumberScheduled, "currentNumberScheduled": st.CurrentNumberScheduled,
			"numberMisscheduled": st.NumberMisscheduled, "numberReady": st.NumberReady,
			"updatedNumberScheduled": st.UpdatedNumberScheduled, "numberAvailable": st.NumberAvailable,
			"numberUnavailable": st.NumberUnavailable, "observedGeneration": st.ObservedGeneration,
		}))
	}
	if ds.Spec.MinReadySeconds > 0 && plan.Status.NumberAvailable < plan.Status.NumberReady {
		c.loop.Queue.AddAfter(key, time.Duration(ds.Spec.MinReadySeconds)*time.Second)
	}
	return errors.Join(errs...)
}

// syncHistory keeps a ControllerRevision per template for `kubectl rollout
// history/undo`; revisions still run by some pod are never pruned.
func (c *Controller) syncHistory(ctx context.Context, ds *appsv1.DaemonSet, sel labels.Selector, hash string, byNode map[string][]*corev1.Pod) error {
	keep := map[string]bool{}
	for _, pods := range byNode {
		for _, pod := range pods {
			if h := pod.Labels[HashLabel]; h != "" {
				keep[history.Name(ds.Name, h)] = true
			}
		}
	}
	_, err := history.Sync(ctx, c.client, c.revs, history.Owner{Object: ds, Kind: daemonSetKind, Selector: sel,
		Template: &ds.Spec.Template, Hash: hash, Limit: ds.Spec.RevisionHistoryLimit, Keep: keep})
	return err
}

// podNode is the node a daemon pod is bound or pinned to.
func podNode(pod *corev1.Pod) string {
	if pod.Spec.NodeName != "" {
		return pod.Spec.NodeName
	}
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, t := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			for _, f := range t.MatchFields {
				if f.Key == "metadata.name" && f.Operator == corev1.NodeSelectorOpIn && len(f.Values) == 1 {
					return f.Values[0]
				}
			}
		}
	}
	return ""
}

// podFor builds the daemon pod for node: template labels plus the hash,
// default tolerations, and required affinity replaced by a match on the
// node's name (upstream's ReplaceDaemonSetPodNodeNameNodeAffinity).
func podFor(ds *appsv1.DaemonSet, hash, node string) *corev1.Pod {
	spec := ds.Spec.Template.Spec.DeepCopy()
	WithDefaultTolerations(spec)
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.NodeAffinity == nil {
		spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{
			{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}}}}}
	lbls := map[string]string{}
	for k, v := range ds.Spec.Template.Labels {
		lbls[k] = v
	}
	lbls[HashLabel] = hash
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: ds.Name + "-", Namespace: ds.Namespace, Labels: lbls,
			Annotations:     ds.Spec.Template.Annotations,
			OwnerReferences: []metav1.OwnerReference{ctrlutil.ControllerRef(ds, daemonSetKind)},
		},
		Spec: *spec,
	}
}
