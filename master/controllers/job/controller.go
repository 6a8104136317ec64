// Package job is the Job controller: it runs pods until spec.completions
// succeed (or, without completions, until one succeeds and the rest
// finish), at most spec.parallelism at a time, recreating failed pods with
// exponential backoff until spec.backoffLimit failures, and fails the Job
// when activeDeadlineSeconds pass. The decision is the pure Decide in
// core.go; counts come from the Job's pods (no tracking finalizers yet).
package job

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
)

var jobKind = batchv1.SchemeGroupVersion.WithKind("Job")

// Config of the controller. Zero values take defaults.
type Config struct {
	Workers int            // concurrent syncs (default 5)
	Now     ctrlutil.Clock // default time.Now
}

// Controller reconciles Jobs.
type Controller struct {
	client   kubernetes.Interface
	cfg      Config
	jobs     batchlisters.JobLister
	pods     listersv1.PodLister
	queue    ctrlutil.Queue
	exp      *ctrlutil.Expectations
	synced   []cache.InformerSynced
	recorder record.EventRecorder
}

// New returns the controller.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config) *Controller {
	if cfg.Workers <= 0 {
		cfg.Workers = 5
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	jobInf := factory.Batch().V1().Jobs()
	podInf := factory.Core().V1().Pods()
	c := &Controller{
		client: client, cfg: cfg, jobs: jobInf.Lister(), pods: podInf.Lister(),
		queue: ctrlutil.NewQueue("job"), exp: ctrlutil.NewExpectations(cfg.Now),
		synced: []cache.InformerSynced{jobInf.Informer().HasSynced, podInf.Informer().HasSynced},
	}
	jobInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { ctrlutil.Enqueue(c.queue, o) },
		UpdateFunc: func(_, n any) { ctrlutil.Enqueue(c.queue, n) },
		DeleteFunc: func(o any) { ctrlutil.Enqueue(c.queue, o) },
	})
	podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { c.onPod(o, 1, 0) },
		UpdateFunc: func(o, n any) {
			del := 0
			if o.(*corev1.Pod).DeletionTimestamp == nil && n.(*corev1.Pod).DeletionTimestamp != nil {
				del = 1
			}
			c.onPod(n, 0, del)
		},
		DeleteFunc: func(o any) { c.onPod(o, 0, 1) },
	})
	return c
}

func (c *Controller) onPod(obj any, added, deleted int) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil && ref.Kind == jobKind.Kind {
		key := pod.Namespace + "/" + ref.Name
		c.exp.Observed(key, added, deleted)
		c.queue.Add(key)
	}
}

// Run syncs Jobs until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	c.recorder = ctrlutil.NewRecorder(ctx, c.client, "job-controller")
	return ctrlutil.Run(ctx, "job", c.queue, c.cfg.Workers, c.sync, c.synced...)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	job, err := c.jobs.Jobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.exp.Forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	all, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	var owned []*corev1.Pod
	for _, p := range all {
		if ref := metav1.GetControllerOfNoCopy(p); ref != nil && ref.UID == job.UID {
			owned = append(owned, p)
		}
	}
	plan := Decide(job, owned, c.exp.Satisfied(key) && job.DeletionTimestamp == nil, c.cfg.Now())
	errs := []error{c.create(ctx, key, job, plan.Create), c.delete(ctx, key, job, plan.Delete)}
	if !equality.Semantic.DeepEqual(plan.Status, job.Status) {
		st := plan.Status
		for _, cond := range st.Conditions {
			if cond.Type == batchv1.JobFailed && !finished(job) {
				c.recorder.Event(job, corev1.EventTypeWarning, cond.Reason, cond.Message)
			}
			if cond.Type == batchv1.JobComplete && !finished(job) {
				c.recorder.Event(job, corev1.EventTypeNormal, "Completed", "Job completed")
			}
		}
		patch := ctrlutil.MergePatch(map[string]any{"status": map[string]any{
			"active": st.Active, "succeeded": st.Succeeded, "failed": st.Failed, "ready": st.Ready,
			"startTime": st.StartTime, "completionTime": st.CompletionTime, "conditions": st.Conditions,
		}})
		_, err := c.client.BatchV1().Jobs(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("update status: %w", err))
		}
	}
	if plan.Requeue > 0 {
		c.queue.AddAfter(key, plan.Requeue)
	}
	return errors.Join(errs...)
}

func (c *Controller) podFor(job *batchv1.Job) *corev1.Pod {
	lbls := map[string]string{}
	for k, v := range job.Spec.Template.Labels {
		lbls[k] = v
	}
	lbls[batchv1.JobNameLabel] = job.Name
	lbls["job-name"] = job.Name // legacy labels, still used by selectors in the wild
	lbls[batchv1.ControllerUidLabel] = string(job.UID)
	lbls["controller-uid"] = string(job.UID)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: job.Name + "-", Namespace: job.Namespace, Labels: lbls,
			Annotations:     job.Spec.Template.Annotations,
			OwnerReferences: []metav1.OwnerReference{ctrlutil.ControllerRef(job, jobKind)},
		},
		Spec: *job.Spec.Template.Spec.DeepCopy(),
	}
}

func (c *Controller) create(ctx context.Context, key string, job *batchv1.Job, n int) error {
	if n == 0 {
		return nil
	}
	c.exp.Expect(key, n, 0)
	var attempted atomic.Int64
	_, err := ctrlutil.SlowStart(ctx, n, func(ctx context.Context) error {
		attempted.Add(1)
		created, err := c.client.CoreV1().Pods(job.Namespace).Create(ctx, c.podFor(job), metav1.CreateOptions{})
		if err != nil {
			c.exp.Observed(key, 1, 0)
			c.recorder.Eventf(job, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
			return err
		}
		c.recorder.Eventf(job, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", created.Name)
		return nil
	})
	if err != nil {
		c.exp.Observed(key, n-int(attempted.Load()), 0)
		return fmt.Errorf("create job pods: %w", err)
	}
	return nil
}

func (c *Controller) delete(ctx context.Context, key string, job *batchv1.Job, pods []*corev1.Pod) error {
	if len(pods) == 0 {
		return nil
	}
	c.exp.Expect(key, 0, len(pods))
	var errs []error
	for _, p := range pods {
		err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if err != nil {
			c.exp.Observed(key, 0, 1)
			if !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
			continue
		}
		c.recorder.Eventf(job, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
	}
	return errors.Join(errs...)
}
