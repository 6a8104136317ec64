package job

import (
	"fmt"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrltest"
	"github.com/hoist-project/hoist/master/controllers/fakeapi"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func i32(v int32) *int32 { return &v }
func i64(v int64) *int64 { return &v }

func newJob(completions, parallelism *int32) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "work", UID: "job-uid"},
		Spec: batchv1.JobSpec{Completions: completions, Parallelism: parallelism, Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "i"}}}}},
	}
}

func jpod(phase corev1.PodPhase, finished time.Time) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(finished.Add(-time.Minute))}, Status: corev1.PodStatus{Phase: phase}}
	if phase == corev1.PodFailed {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: metav1.NewTime(finished)}}}}
	}
	return p
}

func pods(spec ...any) []*corev1.Pod {
	var out []*corev1.Pod
	for i := 0; i < len(spec); i += 2 {
		for n := 0; n < spec[i+1].(int); n++ {
			out = append(out, jpod(spec[i].(corev1.PodPhase), now.Add(-time.Hour)))
		}
	}
	return out
}

func condition(st batchv1.JobStatus) string {
	for _, c := range st.Conditions {
		if c.Status == corev1.ConditionTrue {
			return string(c.Type) + "/" + c.Reason
		}
	}
	return ""
}

func TestDecide(t *testing.T) {
	run, ok, bad := corev1.PodRunning, corev1.PodSucceeded, corev1.PodFailed
	cases := []struct {
		name        string
		job         *batchv1.Job
		pods        []*corev1.Pod
		create, del int
		cond        string
	}{
		{"start parallel", newJob(i32(5), i32(2)), nil, 2, 0, ""},
		{"keep parallelism", newJob(i32(5), i32(2)), pods(ok, 2, run, 1), 1, 0, ""},
		{"no more than remaining", newJob(i32(5), i32(3)), pods(ok, 4), 1, 0, ""},
		{"extra active deleted", newJob(i32(5), i32(1)), pods(run, 3), 0, 2, ""},
		{"complete", newJob(i32(2), i32(2)), pods(ok, 2), 0, 0, "Complete/"},
		{"default completions 1", newJob(nil, nil), pods(ok, 1), 0, 0, "Complete/"},
		{"work queue waits for active", newJob(nil, i32(3)), pods(ok, 1, run, 2), 0, 0, ""},
		{"work queue done", newJob(nil, i32(3)), pods(ok, 1, bad, 2), 0, 0, "Complete/"},
		{"backoff limit", func() *batchv1.Job { j := newJob(i32(1), nil); j.Spec.BackoffLimit = i32(1); return j }(), pods(bad, 2, run, 1), 0, 1, "Failed/" + ReasonBackoffLimitExceeded},
		{"within backoff limit replaced", func() *batchv1.Job { j := newJob(i32(1), nil); j.Spec.BackoffLimit = i32(2); return j }(), pods(bad, 2), 1, 0, ""},
		{"suspended", func() *batchv1.Job { j := newJob(i32(3), i32(3)); s := true; j.Spec.Suspend = &s; return j }(), pods(run, 2), 0, 2, ""},
	}
	for _, c := range cases {
		p := Decide(c.job, c.pods, true, now)
		if p.Create != c.create || len(p.Delete) != c.del || condition(p.Status) != c.cond {
			t.Errorf("%s: create %d delete %d cond %q, want %d %d %q", c.name, p.Create, len(p.Delete), condition(p.Status), c.create, c.del, c.cond)
		}
	}
}

func TestBackoffAndDeadline(t *testing.T) {
	for failed, want := range map[int32]time.Duration{0: 0, 1: 10 * time.Second, 2: 20 * time.Second, 3: 40 * time.Second, 10: 6 * time.Minute} {
		if got := Backoff(failed); got != want {
			t.Errorf("Backoff(%d) = %v, want %v", failed, got, want)
		}
	}
	j := newJob(i32(1), nil)
	failedAt := now.Add(-5 * time.Second)
	p := Decide(j, []*corev1.Pod{jpod(corev1.PodFailed, failedAt)}, true, now)
	if p.Create != 0 || p.Requeue != 5*time.Second {
		t.Fatalf("inside backoff: create %d requeue %v, want 0 and 5s", p.Create, p.Requeue)
	}
	if p := Decide(j, []*corev1.Pod{jpod(corev1.PodFailed, failedAt)}, true, now.Add(5*time.Second)); p.Create != 1 {
		t.Fatalf("after backoff: create %d", p.Create)
	}
	j.Spec.ActiveDeadlineSeconds = i64(60)
	start := metav1.NewTime(now)
	j.Status.StartTime = &start
	if p := Decide(j, pods(corev1.PodRunning, 1), true, now.Add(30*time.Second)); p.Requeue != 30*time.Second || condition(p.Status) != "" {
		t.Fatalf("before deadline: requeue %v cond %q", p.Requeue, condition(p.Status))
	}
	p = Decide(j, pods(corev1.PodRunning, 1), true, now.Add(60*time.Second))
	if condition(p.Status) != "Failed/"+ReasonDeadlineExceeded || len(p.Delete) != 1 {
		t.Fatalf("at deadline: cond %q delete %d", condition(p.Status), len(p.Delete))
	}
	j.Status.Conditions = p.Status.Conditions
	if p := Decide(j, pods(corev1.PodRunning, 1), true, now.Add(time.Hour)); p.Create != 0 || len(p.Delete) != 1 {
		t.Fatal("finished job must only clean up")
	}
}

func TestControllerRunsToCompletion(t *testing.T) {
	client := fakeapi.New(newJob(i32(3), i32(2)))
	ctx := ctrltest.Start(t, client, func(f informers.SharedInformerFactory) ctrltest.Runner { return New(client, f, Config{}) })
	deadline := time.Now().Add(10 * time.Second)
	maxActive := 0
	for {
		j, err := client.BatchV1().Jobs("default").Get(ctx, "work", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if condition(j.Status) == "Complete/" {
			if j.Status.Succeeded != 3 || j.Status.CompletionTime == nil || j.Status.StartTime == nil {
				t.Fatalf("complete status %+v", j.Status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job never completed: %+v", j.Status)
		}
		// Play kubelet: every running pod succeeds.
		l, _ := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		active := 0
		for i := range l.Items {
			p := &l.Items[i]
			if p.Labels[batchv1.JobNameLabel] != "work" || p.Labels["controller-uid"] != "job-uid" {
				t.Fatalf("pod labels %v", p.Labels)
			}
			if p.Status.Phase == "" {
				active++
				p.Status.Phase = corev1.PodSucceeded
				patch := fmt.Sprintf(`{"status":{"phase":%q}}`, corev1.PodSucceeded)
				if _, err := client.CoreV1().Pods("default").Patch(ctx, p.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status"); err != nil {
					t.Fatal(err)
				}
			}
		}
		maxActive = max(maxActive, active)
		time.Sleep(20 * time.Millisecond)
	}
	if maxActive > 2 {
		t.Fatalf("%d pods active at once, parallelism is 2", maxActive)
	}
	l, _ := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if len(l.Items) != 3 {
		t.Fatalf("%d pods created for 3 completions", len(l.Items))
	}
}
