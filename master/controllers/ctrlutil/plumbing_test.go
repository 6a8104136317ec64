package ctrlutil

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/hoist-project/hoist/master/controllers/fakeapi"
)

func drain(r *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-r.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func countPrefix(events []string, prefix string) int {
	n := 0
	for _, e := range events {
		if strings.HasPrefix(e, prefix) {
			n++
		}
	}
	return n
}

func TestPodControl(t *testing.T) {
	ctx := context.Background()
	client := fakeapi.New()
	exp := NewExpectations(time.Now)
	rec := record.NewFakeRecorder(100)
	pc := PodControl{Client: client, Exp: exp, Recorder: rec}
	owner := &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "rc"}}
	var built sync.Map // newPod runs concurrently within a batch
	newPod := func(i int) *corev1.Pod {
		built.Store(i, true)
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", GenerateName: "rc-"}}
	}

	if err := pc.CreatePods(ctx, "default/rc", owner, 3, newPod); err != nil {
		t.Fatal(err)
	}
	pods, _ := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	for i := 0; i < 3; i++ {
		if _, ok := built.Load(i); !ok {
			t.Fatalf("newPod(%d) never called", i)
		}
	}
	if len(pods.Items) != 3 {
		t.Fatalf("created %d pods, want 3", len(pods.Items))
	}
	if got := countPrefix(drain(rec), "Normal SuccessfulCreate"); got != 3 {
		t.Fatalf("%d SuccessfulCreate events, want 3", got)
	}
	if exp.Satisfied("default/rc") {
		t.Fatal("3 unobserved creations must block the next sync")
	}
	exp.Observed("default/rc", 3, 0)

	// Every create fails: the first batch of 1 stops the rest, and
	// nothing stays expected.
	client.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("quota exceeded")
	})
	err := pc.CreatePods(ctx, "default/rc", owner, 4, newPod)
	if err == nil || !strings.Contains(err.Error(), "create pods: quota exceeded") {
		t.Fatalf("err = %v, want the wrapped create error", err)
	}
	if !exp.Satisfied("default/rc") {
		t.Fatal("failed and never-made creations must count as observed")
	}
	if got := countPrefix(drain(rec), "Warning FailedCreate"); got != 1 {
		t.Fatalf("%d FailedCreate events, want 1", got)
	}

	gone := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "gone", UID: "x"}}
	del := []*corev1.Pod{&pods.Items[0], &pods.Items[1], gone}
	if err := pc.DeletePods(ctx, "default/rc", owner, del); err != nil {
		t.Fatalf("a pod already gone is not an error: %v", err)
	}
	left, _ := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if len(left.Items) != 1 {
		t.Fatalf("%d pods left, want 1", len(left.Items))
	}
	if exp.Satisfied("default/rc") {
		t.Fatal("2 unobserved deletions must block the next sync")
	}
	exp.Observed("default/rc", 0, 2)
	if !exp.Satisfied("default/rc") {
		t.Fatal("the missing pod must count as observed")
	}
	if got := countPrefix(drain(rec), "Normal SuccessfulDelete"); got != 2 {
		t.Fatalf("%d SuccessfulDelete events, want 2", got)
	}
}

func TestObjectSync(t *testing.T) {
	var gotGone, gotSync []string
	get := func(ns, name string) (string, error) {
		if name == "missing" {
			return "", apierrors.NewNotFound(corev1.Resource("pods"), name)
		}
		if name == "broken" {
			return "", errors.New("cache broken")
		}
		return ns + "|" + name, nil
	}
	gone := func(_ context.Context, key string) error { gotGone = append(gotGone, key); return nil }
	sync := ObjectSync(get, gone, func(_ context.Context, key, obj string) error {
		gotSync = append(gotSync, key+"="+obj)
		return nil
	})
	ctx := context.Background()
	for _, key := range []string{"a/b/c", "ns/missing", "ns/x"} {
		if err := sync(ctx, key); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	if err := sync(ctx, "ns/broken"); err == nil {
		t.Fatal("a cache error must be returned for a retry")
	}
	if fmt.Sprint(gotGone, gotSync) != "[ns/missing] [ns/x=ns|x]" {
		t.Fatalf("gone %v sync %v", gotGone, gotSync)
	}
	if err := ObjectSync(get, nil, nil)(ctx, "ns/missing"); err != nil {
		t.Fatalf("nil gone: %v", err)
	}
}

func TestPodHandlerObservesOwner(t *testing.T) {
	q := NewQueue("test")
	defer q.ShutDown()
	exp := NewExpectations(time.Now)
	exp.Expect("ns/job", 1, 1)
	tr := true
	owned := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", OwnerReferences: []metav1.OwnerReference{
		{Kind: "Job", Name: "job", Controller: &tr}}}}
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "o", OwnerReferences: []metav1.OwnerReference{
		{Kind: "ReplicaSet", Name: "rs", Controller: &tr}}}}
	h := PodHandler(ObserveOwner(q, exp, "Job"))

	h.OnAdd(other, false)
	h.OnAdd(owned, false)
	if q.Len() != 1 || exp.Satisfied("ns/job") {
		t.Fatalf("queue %d, satisfied %v: want the Job queued and one deletion pending", q.Len(), exp.Satisfied("ns/job"))
	}
	deleting := owned.DeepCopy()
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	h.OnUpdate(owned, deleting)
	if !exp.Satisfied("ns/job") {
		t.Fatal("setting deletionTimestamp must observe the deletion")
	}
	exp.Expect("ns/job", 0, 1)
	h.OnDelete(cache.DeletedFinalStateUnknown{Key: "ns/p", Obj: owned})
	if !exp.Satisfied("ns/job") {
		t.Fatal("a tombstone must observe the deletion")
	}
	if key, _ := q.Get(); key != "ns/job" {
		t.Fatalf("queued %q", key)
	}
}
