package replicaset

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrltest"
	"github.com/hoist-project/hoist/master/controllers/fakeapi"
)

var appLabels = map[string]string{"app": "web"}

func template() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: appLabels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

func replicaSet(n int32) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "rs-uid"},
		Spec:       appsv1.ReplicaSetSpec{Replicas: &n, Selector: &metav1.LabelSelector{MatchLabels: appLabels}, Template: template()},
	}
}

func run(t *testing.T, client kubernetes.Interface, newFn func(kubernetes.Interface, informers.SharedInformerFactory, Config) *Controller) {
	t.Helper()
	ctrltest.Start(t, client, func(f informers.SharedInformerFactory) ctrltest.Runner { return newFn(client, f, Config{}) })
}

func activePods(t *testing.T, client kubernetes.Interface, ownerUID string) []corev1.Pod {
	t.Helper()
	list, err := client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if ref := metav1.GetControllerOf(&p); ref != nil && string(ref.UID) == ownerUID && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

func TestReplicaSetScalesAndAdopts(t *testing.T) {
	orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "orphan", UID: "orphan-uid", Labels: appLabels}}
	stranger := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "stranger", UID: "s-uid", Labels: map[string]string{"app": "db"}}}
	client := fakeapi.New(replicaSet(3), orphan, stranger)
	run(t, client, New)
	ctx := context.Background()

	ctrltest.WaitFor(t, "3 owned pods (orphan adopted + 2 created)", func() bool { return len(activePods(t, client, "rs-uid")) == 3 })
	pods := activePods(t, client, "rs-uid")
	adopted := false
	for _, p := range pods {
		if p.Name == "orphan" {
			adopted = true
		} else if p.GenerateName != "web-" || p.Labels["app"] != "web" {
			t.Errorf("created pod %s: generateName %q labels %v", p.Name, p.GenerateName, p.Labels)
		}
	}
	if !adopted {
		t.Fatal("orphan matching the selector was not adopted")
	}
	if s, _ := client.CoreV1().Pods("default").Get(ctx, "stranger", metav1.GetOptions{}); metav1.GetControllerOf(s) != nil {
		t.Fatal("pod not matching the selector was adopted")
	}
	ctrltest.WaitFor(t, "status.replicas=3", func() bool {
		rs, _ := client.AppsV1().ReplicaSets("default").Get(ctx, "web", metav1.GetOptions{})
		return rs.Status.Replicas == 3
	})

	rs, _ := client.AppsV1().ReplicaSets("default").Get(ctx, "web", metav1.GetOptions{})
	one := int32(1)
	rs.Spec.Replicas = &one
	if _, err := client.AppsV1().ReplicaSets("default").Update(ctx, rs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ctrltest.WaitFor(t, "scale down to 1", func() bool { return len(activePods(t, client, "rs-uid")) == 1 })
	time.Sleep(100 * time.Millisecond) // observation window: no overshoot
	if n := len(activePods(t, client, "rs-uid")); n != 1 {
		t.Fatalf("after settling %d pods, want 1", n)
	}
}

func TestReplicationControllerSharesCore(t *testing.T) {
	n := int32(2)
	rc := &corev1.ReplicationController{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "legacy", UID: "rc-uid"},
		Spec:       corev1.ReplicationControllerSpec{Replicas: &n, Selector: appLabels, Template: func() *corev1.PodTemplateSpec { t := template(); return &t }()},
	}
	client := fakeapi.New(rc)
	run(t, client, NewReplicationController)
	ctrltest.WaitFor(t, "2 pods for the RC", func() bool { return len(activePods(t, client, "rc-uid")) == 2 })
	p := activePods(t, client, "rc-uid")[0]
	if ref := metav1.GetControllerOf(&p); ref.Kind != "ReplicationController" || ref.APIVersion != "v1" {
		t.Fatalf("owner ref = %+v", ref)
	}
	// A pod deleted behind the controller's back is replaced.
	if err := client.CoreV1().Pods("default").Delete(context.Background(), p.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ctrltest.WaitFor(t, "replacement pod", func() bool {
		ps := activePods(t, client, "rc-uid")
		return len(ps) == 2 && ps[0].Name != p.Name && ps[1].Name != p.Name
	})
}

func readyPod(name, node string, phase corev1.PodPhase, ready bool, since time.Time) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: appLabels, CreationTimestamp: metav1.NewTime(since)},
		Spec:       corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{Phase: phase, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: st, LastTransitionTime: metav1.NewTime(since)}}},
	}
}

func TestDecideStatusAndDeletionOrder(t *testing.T) {
	now := time.Unix(10000, 0)
	set := rsView(replicaSet(1))
	set.MinReadySeconds = 30
	old := readyPod("old-ready", "n1", corev1.PodRunning, true, now.Add(-time.Hour))
	fresh := readyPod("fresh-ready", "n1", corev1.PodRunning, true, now.Add(-10*time.Second))
	unready := readyPod("unready", "n1", corev1.PodRunning, false, now.Add(-time.Hour))
	pending := readyPod("unscheduled", "", corev1.PodPending, false, now)
	done := readyPod("done", "n1", corev1.PodSucceeded, false, now)
	plan := Decide(set, []*corev1.Pod{old, fresh, unready, pending, done}, true, now)
	if plan.Status.Replicas != 4 || plan.Status.ReadyReplicas != 2 || plan.Status.AvailableReplicas != 1 || plan.Status.FullyLabeledReplicas != 4 {
		t.Fatalf("status = %+v", plan.Status)
	}
	if plan.Requeue != 20*time.Second {
		t.Fatalf("requeue = %v, want 20s (fresh-ready becomes available)", plan.Requeue)
	}
	var names []string
	for _, p := range plan.Delete {
		names = append(names, p.Name)
	}
	want := []string{"unscheduled", "unready", "fresh-ready"}
	if len(names) != 3 || names[0] != want[0] || names[1] != want[1] || names[2] != want[2] {
		t.Fatalf("delete order = %v, want %v", names, want)
	}
	if p := Decide(set, []*corev1.Pod{old, fresh}, false, now); p.Create != 0 || len(p.Delete) != 0 {
		t.Fatal("scaled while expectations were pending")
	}
	if p := Decide(set, nil, true, now); p.Create != 1 {
		t.Fatalf("create = %d, want 1", p.Create)
	}
}
