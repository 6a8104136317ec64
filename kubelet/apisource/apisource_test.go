package apisource

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/hoist-project/hoist/kubelet/config"
)

func pod(name, uid, node string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(uid)},
		Spec:       v1.PodSpec{NodeName: node, Containers: []v1.Container{{Name: "c", Image: "img"}}},
	}
}

func start(t *testing.T, client *fake.Clientset) (*Source, chan config.PodUpdate) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	src := &Source{Client: client, NodeName: "n1"}
	out := make(chan config.PodUpdate)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return src, out
}

func next(t *testing.T, out chan config.PodUpdate) config.PodUpdate {
	t.Helper()
	select {
	case u := <-out:
		return u
	case <-time.After(5 * time.Second):
		t.Fatal("no pod update within 5s")
	}
	return config.PodUpdate{}
}

func quiet(t *testing.T, out chan config.PodUpdate) {
	t.Helper()
	select {
	case u := <-out:
		t.Fatalf("unexpected update: %s %s", u.Op, u.Pod.Name)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestSeesOnlyPodsBoundToThisNode(t *testing.T) {
	mirror := pod("static-n1", "u4", "n1")
	mirror.Annotations = map[string]string{MirrorAnnotation: "hash"}
	client := fake.NewClientset(pod("mine", "u1", "n1"), pod("other", "u2", "n2"), pod("pending", "u3", ""), mirror)
	src, out := start(t, client)
	u := next(t, out)
	if u.Op != config.Add || u.Pod.Name != "mine" || u.Pod.Annotations[config.ConfigSourceAnnotation] != "api" {
		t.Fatalf("first update = %s %s (%v)", u.Op, u.Pod.Name, u.Pod.Annotations)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !src.HasSynced() {
		if time.Now().After(deadline) {
			t.Fatal("source never synced")
		}
		time.Sleep(10 * time.Millisecond)
	}
	quiet(t, out)
}

func TestUpdateAndDeleteSemantics(t *testing.T) {
	client := fake.NewClientset()
	_, out := start(t, client)
	ctx := context.Background()
	p := pod("web", "u1", "n1")
	if _, err := client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if u := next(t, out); u.Op != config.Add || u.UID() != "u1" {
		t.Fatalf("got %s %s", u.Op, u.UID())
	}
	// A status-only change (our own status write) is no update.
	p.Status.Phase = v1.PodRunning
	if _, err := client.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	quiet(t, out)
	p.Spec.Containers[0].Image = "img:2"
	if _, err := client.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if u := next(t, out); u.Op != config.Update || u.Pod.Spec.Containers[0].Image != "img:2" {
		t.Fatalf("got %s image %s", u.Op, u.Pod.Spec.Containers[0].Image)
	}
	// Deleted outright (force): removed with grace 0.
	if err := client.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	u := next(t, out)
	if u.Op != config.Remove || u.UID() != "u1" || *u.Pod.Spec.TerminationGracePeriodSeconds != 0 {
		t.Fatalf("got %s %s", u.Op, u.UID())
	}
}

func TestGracefulDeletion(t *testing.T) {
	client := fake.NewClientset(pod("web", "u1", "n1"))
	src, out := start(t, client)
	ctx := context.Background()
	next(t, out)
	// What the API server does on `kubectl delete pod web`.
	p, _ := client.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
	now, grace := metav1.Now(), int64(7)
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, &grace
	if _, err := client.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	u := next(t, out)
	if u.Op != config.Remove || u.Pod.Spec.TerminationGracePeriodSeconds == nil || *u.Pod.Spec.TerminationGracePeriodSeconds != 7 {
		t.Fatalf("got %s with grace %v, want remove with grace 7", u.Op, u.Pod.Spec.TerminationGracePeriodSeconds)
	}
	// Further updates of a terminating pod change nothing.
	p.Labels = map[string]string{"x": "y"}
	if _, err := client.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	quiet(t, out)
	client.ClearActions()
	// The kubelet killed it: the final delete.
	if err := src.Finalize(ctx, u.Pod); err != nil {
		t.Fatal(err)
	}
	var del k8stesting.DeleteActionImpl
	for _, a := range client.Actions() {
		if d, ok := a.(k8stesting.DeleteActionImpl); ok {
			del = d
		}
	}
	opts := del.GetDeleteOptions()
	if del.GetName() != "web" || opts.GracePeriodSeconds == nil || *opts.GracePeriodSeconds != 0 ||
		opts.Preconditions == nil || *opts.Preconditions.UID != "u1" {
		t.Fatalf("final delete = %+v, want web with grace 0 and UID precondition u1", del)
	}
	if _, err := client.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{}); err == nil {
		t.Fatal("pod still in the API after the final delete")
	}
	quiet(t, out) // the watch's delete event does not kill twice
	// Finalize ignores pods that are not being deleted, and static pods.
	client.ClearActions()
	if err := src.Finalize(ctx, pod("x", "u9", "n1")); err != nil || len(client.Actions()) != 0 {
		t.Fatalf("finalize of a live pod: err=%v actions=%v", err, client.Actions())
	}
}
