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
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/hoist-project/hoist/internal/informers"
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
	loop     *ctrlutil.Loop
	exp      *ctrlutil.Expectations
	recorder record.EventRecorder
}

// New returns the controller.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config) *Controller {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	jobInf := factory.Batch().V1().Jobs()
	podInf := factory.Core().V1().Pods()
	c := &Controller{
		client: client, cfg: cfg, jobs: jobInf.Lister(), pods: podInf.Lister(),
		loop: ctrlutil.NewLoop("job", cfg.Workers, 5), exp: ctrlutil.NewExpectations(cfg.Now),
	}
	c.loop.WatchKeys(jobInf.Informer())
	c.loop.Watch(podInf.Informer(), ctrlutil.PodHandler(ctrlutil.ObserveOwner(c.loop.Queue, c.exp, jobKind.Kind)))
	return c
}

// Run syncs Jobs until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	c.recorder = ctrlutil.NewRecorder(ctx, c.client, "job-controller")
	return c.loop.Run(ctx, ctrlutil.ObjectSync(c.getJob, c.exp.Gone, c.sync))
}

func (c *Controller) getJob(ns, name string) (*batchv1.Job, error) { return c.jobs.Jobs(ns).Get(name) }

func (c *Controller) sync(ctx context.Context, key string, job *batchv1.Job) error {
	all, err := c.pods.Pods(job.Namespace).List(labels.Everything())
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
	pc := ctrlutil.PodControl{Client: c.client, Exp: c.exp, Recorder: c.recorder}
	errs := []error{
		pc.CreatePods(ctx, key, job, plan.Create, func(int) *corev1.Pod { return c.podFor(job) }),
		pc.DeletePods(ctx, key, job, plan.Delete),
	}
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
		errs = append(errs, ctrlutil.PatchStatus(ctx, c.client.BatchV1().Jobs(job.Namespace), job.Name, map[string]any{
			"active": st.Active, "succeeded": st.Succeeded, "failed": st.Failed, "ready": st.Ready,
			"startTime": st.StartTime, "completionTime": st.CompletionTime, "conditions": st.Conditions,
		}))
	}
	if plan.Requeue > 0 {
		c.loop.Queue.AddAfter(key, plan.Requeue)
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
