package job

import (
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
)

// Condition reasons and messages, as upstream (kubectl describe and
// `kubectl wait --for=condition=complete|failed` read them).
const (
	ReasonBackoffLimitExceeded = "BackoffLimitExceeded"
	ReasonDeadlineExceeded     = "DeadlineExceeded"
	defaultBackoffLimit        = 6
	// Backoff before recreating failed pods: 10s doubling up to 6 minutes.
	backoffBase = 10 * time.Second
	backoffMax  = 6 * time.Minute
)

// Plan is one sync's decision for a Job.
type Plan struct {
	Create  int
	Delete  []*corev1.Pod
	Status  batchv1.JobStatus
	Requeue time.Duration
}

func finished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func finishTime(p *corev1.Pod) time.Time {
	t := p.CreationTimestamp.Time
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Terminated != nil && cs.State.Terminated.FinishedAt.After(t) {
			t = cs.State.Terminated.FinishedAt.Time
		}
	}
	return t
}

// Backoff is the delay before replacing the n-th failed pod.
func Backoff(failed int32) time.Duration {
	if failed <= 0 {
		return 0
	}
	d := backoffBase
	for i := int32(1); i < failed && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
}

func setCondition(st *batchv1.JobStatus, typ batchv1.JobConditionType, reason, msg string, now time.Time) {
	t := metav1.NewTime(now)
	for i := range st.Conditions {
		if st.Conditions[i].Type == typ {
			if st.Conditions[i].Status != corev1.ConditionTrue {
				st.Conditions[i] = batchv1.JobCondition{Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: t, LastTransitionTime: t}
			}
			return
		}
	}
	st.Conditions = append(st.Conditions, batchv1.JobCondition{Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: t, LastTransitionTime: t})
}

// Decide computes the plan for job given its pods (owned, any phase).
// scale is false while expectations are pending.
func Decide(job *batchv1.Job, pods []*corev1.Pod, scale bool, now time.Time) Plan {
	var p Plan
	st := *job.Status.DeepCopy()
	var active []*corev1.Pod
	var succeeded, failed, ready int32
	var lastFail time.Time
	for _, pod := range pods {
		switch {
		case pod.Status.Phase == corev1.PodSucceeded:
			succeeded++
		case pod.Status.Phase == corev1.PodFailed:
			failed++
			lastFail = maxTime(lastFail, finishTime(pod))
		case pod.DeletionTimestamp == nil:
			active = append(active, pod)
			if ctrlutil.PodReady(pod) {
				ready++
			}
		}
	}
	st.Active, st.Succeeded, st.Failed, st.Ready = int32(len(active)), succeeded, failed, &ready
	if st.StartTime == nil && !suspended(job) {
		t := metav1.NewTime(now)
		st.StartTime = &t
	}
	p.Status = st
	if finished(job) {
		p.Delete = active // leftovers of a finished job
		p.Status.Active = 0
		return p
	}
	backoffLimit := int32(defaultBackoffLimit)
	if job.Spec.BackoffLimit != nil {
		backoffLimit = *job.Spec.BackoffLimit
	}
	parallelism := int32(1)
	if job.Spec.Parallelism != nil {
		parallelism = *job.Spec.Parallelism
	}
	fail := func(reason, msg string) Plan {
		setCondition(&p.Status, batchv1.JobFailed, reason, msg, now)
		p.Delete, p.Status.Active = active, 0
		return p
	}
	if failed > backoffLimit {
		return fail(ReasonBackoffLimitExceeded, "Job has reached the specified backoff limit")
	}
	if d := job.Spec.ActiveDeadlineSeconds; d != nil && st.StartTime != nil && !suspended(job) {
		left := st.StartTime.Add(time.Duration(*d) * time.Second).Sub(now)
		if left <= 0 {
			return fail(ReasonDeadlineExceeded, "Job was active longer than specified deadline")
		}
		p.Requeue = left
	}
	complete := false
	want := parallelism
	if c := job.Spec.Completions; c != nil {
		complete = succeeded >= *c
		want = min(parallelism, max(*c-succeeded, 0))
	} else {
		complete = succeeded > 0 && len(active) == 0
		if succeeded > 0 {
			// Work queue: after one success no new pods start, the
			// running ones finish.
			want = int32(len(active))
		}
	}
	if complete {
		setCondition(&p.Status, batchv1.JobComplete, "", "", now)
		t := metav1.NewTime(now)
		p.Status.CompletionTime = &t
		p.Delete, p.Status.Active = active, 0
		return p
	}
	if suspended(job) {
		want = 0
	}
	if !scale {
		return p
	}
	switch n := int32(len(active)); {
	case n > want:
		sort.Slice(active, func(i, j int) bool { return active[j].CreationTimestamp.Before(&active[i].CreationTimestamp) })
		p.Delete = active[:n-want]
	case n < want:
		if failed > 0 {
			if wait := lastFail.Add(Backoff(failed)).Sub(now); wait > 0 {
				if p.Requeue == 0 || wait < p.Requeue {
					p.Requeue = wait
				}
				return p
			}
		}
		p.Create = int(want - n)
	}
	return p
}

func suspended(j *batchv1.Job) bool { return j.Spec.Suspend != nil && *j.Spec.Suspend }

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
