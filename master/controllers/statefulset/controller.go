// Package statefulset is the StatefulSet controller: pods with stable
// names <set>-<ordinal> and per-ordinal PersistentVolumeClaims from the
// volumeClaimTemplates, created in order and deleted in reverse
// (OrderedReady) or all at once (Parallel), with rolling updates from the
// highest ordinal down to the partition. The decision is the pure Decide
// in core.go.
package statefulset

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
	"github.com/hoist-project/hoist/master/controllers/history"
)

var statefulSetKind = appsv1.SchemeGroupVersion.WithKind("StatefulSet")

// Config of the controller. Zero values take defaults.
type Config struct {
	Workers int // concurrent syncs (default 2)
}

// Controller reconciles StatefulSets.
type Controller struct {
	client   kubernetes.Interface
	cfg      Config
	sets     appslisters.StatefulSetLister
	pods     listersv1.PodLister
	revs     appslisters.ControllerRevisionLister
	loop     *ctrlutil.Loop
	exp      *ctrlutil.Expectations
	recorder record.EventRecorder
}

// New returns the controller.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config) *Controller {
	setInf := factory.Apps().V1().StatefulSets()
	podInf := factory.Core().V1().Pods()
	revInf := factory.Apps().V1().ControllerRevisions()
	c := &Controller{
		client: client, cfg: cfg, sets: setInf.Lister(), pods: podInf.Lister(), revs: revInf.Lister(),
		loop: ctrlutil.NewLoop("statefulset", cfg.Workers, 2), exp: ctrlutil.NewExpectations(time.Now),
	}
	c.loop.WatchKeys(setInf.Informer())
	c.loop.Watch(podInf.Informer(), ctrlutil.PodHandler(ctrlutil.ObserveOwner(c.loop.Queue, c.exp, statefulSetKind.Kind)))
	c.loop.Watch(revInf.Informer(), history.OwnerHandler(c.loop.Queue, statefulSetKind.Kind))
	return c
}

// Run syncs StatefulSets until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	c.recorder = ctrlutil.NewRecorder(ctx, c.client, "statefulset-controller")
	return c.loop.Run(ctx, ctrlutil.ObjectSync(c.getSet, c.exp.Gone, c.sync))
}

func (c *Controller) getSet(ns, name string) (*appsv1.StatefulSet, error) {
	return c.sets.StatefulSets(ns).Get(name)
}

func (c *Controller) sync(ctx context.Context, key string, set *appsv1.StatefulSet) error {
	all, err := c.pods.Pods(set.Namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	pods := map[int]*corev1.Pod{}
	for _, p := range all {
		if ref := metav1.GetControllerOfNoCopy(p); ref != nil && ref.UID == set.UID {
			if ord := Ordinal(set.Name, p.Name); ord >= 0 {
				pods[ord] = p
			}
		}
	}
	hash := ctrlutil.TemplateHash(&set.Spec.Template, set.Status.CollisionCount)
	revision := history.Name(set.Name, hash)
	var errs []error
	if set.DeletionTimestamp == nil {
		errs = append(errs, c.syncHistory(ctx, set, hash, pods))
	}
	plan := Decide(set, pods, revision, c.exp.Satisfied(key) && set.DeletionTimestamp == nil)
	c.exp.Expect(key, len(plan.Create), len(plan.Delete))
	for _, ord := range plan.Create {
		errs = append(errs, c.create(ctx, key, set, ord, revision))
	}
	for _, pod := range plan.Delete {
		if err := ctrlutil.DeletePod(ctx, c.client, pod); err != nil {
			c.exp.Observed(key, 0, 1)
			if !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
			continue
		}
		c.recorder.Eventf(set, corev1.EventTypeNormal, "SuccessfulDelete", "delete Pod %s in StatefulSet %s successful", pod.Name, set.Name)
	}
	plan.Status.CollisionCount = set.Status.CollisionCount
	plan.Status.Conditions = set.Status.Conditions
	if !equality.Semantic.DeepEqual(plan.Status, set.Status) {
		st := plan.Status
		errs = append(errs, ctrlutil.PatchStatus(ctx, c.client.AppsV1().StatefulSets(set.Namespace), set.Name, map[string]any{
			"observedGeneration": st.ObservedGeneration, "replicas": st.Replicas, "readyReplicas": st.ReadyReplicas,
			"currentReplicas": st.CurrentReplicas, "updatedReplicas": st.UpdatedReplicas, "availableReplicas": st.AvailableReplicas,
			"currentRevision": st.CurrentRevision, "updateRevision": st.UpdateRevision,
		}))
	}
	return errors.Join(errs...)
}

// syncHistory keeps a ControllerRevision per template for `kubectl rollout
// history/undo`; the current revision and those pods still run are never
// pruned.
func (c *Controller) syncHistory(ctx context.Context, set *appsv1.StatefulSet, hash string, pods map[int]*corev1.Pod) error {
	sel, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
	if err != nil {
		return nil // the API validates selectors; nothing to keep history by
	}
	keep := map[string]bool{set.Status.CurrentRevision: true}
	for _, pod := range pods {
		keep[pod.Labels[RevisionLabel]] = true
	}
	_, err = history.Sync(ctx, c.client, c.revs, history.Owner{Object: set, Kind: statefulSetKind, Selector: sel,
		Template: &set.Spec.Template, Hash: hash, Limit: set.Spec.RevisionHistoryLimit, Keep: keep})
	return err
}

// create makes ordinal ord's claims (kept across pod restarts and scale
// down, like upstream's default retention) and then its pod.
func (c *Controller) create(ctx context.Context, key string, set *appsv1.StatefulSet, ord int, revision string) error {
	name := PodName(set.Name, ord)
	spec := set.Spec.Template.Spec.DeepCopy()
	spec.Hostname, spec.Subdomain = name, set.Spec.ServiceName
	for _, tmpl := range set.Spec.VolumeClaimTemplates {
		claim := tmpl.Name + "-" + name
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: claim, Namespace: set.Namespace, Labels: set.Spec.Selector.MatchLabels},
			Spec:       *tmpl.Spec.DeepCopy(),
		}
		if _, err := c.client.CoreV1().PersistentVolumeClaims(set.Namespace).Create(ctx, pvc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			c.exp.Observed(key, 1, 0)
			c.recorder.Eventf(set, corev1.EventTypeWarning, "FailedCreate", "create Claim %s for Pod %s in StatefulSet %s failed error: %v", claim, name, set.Name, err)
			return err
		}
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: tmpl.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}})
	}
	lbls := map[string]string{}
	for k, v := range set.Spec.Template.Labels {
		lbls[k] = v
	}
	lbls[PodNameLabel], lbls[PodIndexLabel], lbls[RevisionLabel] = name, strconv.Itoa(ord), revision
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: set.Namespace, Labels: lbls, Annotations: set.Spec.Template.Annotations,
			OwnerReferences: []metav1.OwnerReference{ctrlutil.ControllerRef(set, statefulSetKind)}},
		Spec: *spec,
	}
	if _, err := c.client.CoreV1().Pods(set.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		c.exp.Observed(key, 1, 0)
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("pod %s exists but is not owned by StatefulSet %s (or the cache is stale)", name, set.Name)
		}
		c.recorder.Eventf(set, corev1.EventTypeWarning, "FailedCreate", "create Pod %s in StatefulSet %s failed error: %v", name, set.Name, err)
		return err
	}
	c.recorder.Eventf(set, corev1.EventTypeNormal, "SuccessfulCreate", "create Pod %s in StatefulSet %s successful", name, set.Name)
	return nil
}
