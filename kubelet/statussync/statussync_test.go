package statussync

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/hoist-project/hoist/kubelet/apisource"
	"github.com/hoist-project/hoist/kubelet/config"
)

func apiPod() *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "u1",
		Annotations: map[string]string{config.ConfigSourceAnnotation: apisource.SourceName}},
		Spec: v1.PodSpec{NodeName: "n1"}}
}

func staticPod(hash string) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "etcd-n1", Namespace: "kube-system", UID: "static-" + "uid",
		Labels:      map[string]string{"app": "etcd"},
		Annotations: map[string]string{config.ConfigSourceAnnotation: "file", config.ConfigHashAnnotation: hash}},
		Spec: v1.PodSpec{NodeName: "n1", Containers: []v1.Container{{Name: "etcd", Image: "etcd:" + hash}}}}
}

func countVerb(client *fake.Clientset, verb, sub string) int {
	n := 0
	for _, a := range client.Actions() {
		if a.GetVerb() == verb && a.GetSubresource() == sub && a.GetResource().Resource == "pods" {
			n++
		}
	}
	return n
}

func running() v1.PodStatus {
	return v1.PodStatus{Phase: v1.PodRunning, PodIP: "10.0.0.5"}
}

func TestWriterWritesOnlyOnChange(t *testing.T) {
	p := apiPod()
	client := fake.NewClientset(p)
	w := &Writer{Client: client}
	ctx := context.Background()
	w.PodStatusChanged(p, running())
	if !w.Flush(ctx) {
		t.Fatal("flush failed")
	}
	got, _ := client.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
	if got.Status.Phase != v1.PodRunning || got.Status.PodIP != "10.0.0.5" {
		t.Fatalf("status in the API: %+v", got.Status)
	}
	if n := countVerb(client, "update", "status"); n != 1 {
		t.Fatalf("%d status writes, want 1", n)
	}
	w.PodStatusChanged(p, running()) // same again: nothing to write
	w.Flush(ctx)
	if n := countVerb(client, "update", "status"); n != 1 {
		t.Fatalf("%d status writes after an unchanged status, want 1", n)
	}
	// A pod replaced in the API by another of the same name is not written.
	w.PodStatusChanged(&v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "old",
		Annotations: p.Annotations}}, v1.PodStatus{Phase: v1.PodFailed})
	w.Flush(ctx)
	got, _ = client.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
	if got.Status.Phase != v1.PodRunning {
		t.Fatal("status of an old pod UID overwrote the new pod's")
	}
}

func TestWriterResolvesConflictsAndRetries(t *testing.T) {
	p := apiPod()
	client := fake.NewClientset(p)
	conflicts, failures := 2, 1
	client.PrependReactor("update", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "status" {
			return false, nil, nil
		}
		if conflicts > 0 {
			conflicts--
			return true, nil, apierrors.NewConflict(v1.Resource("pods"), "web", nil)
		}
		if failures > 0 {
			failures--
			return true, nil, apierrors.NewServiceUnavailable("etcd is down")
		}
		return false, nil, nil
	})
	w := &Writer{Client: client}
	ctx := context.Background()
	w.PodStatusChanged(p, running())
	if w.Flush(ctx) {
		t.Fatal("flush succeeded although the API was unavailable")
	}
	if conflicts != 0 {
		t.Fatal("conflicts were not retried")
	}
	if !w.Flush(ctx) {
		t.Fatal("retry failed")
	}
	got, _ := client.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
	if got.Status.PodIP != "10.0.0.5" {
		t.Fatalf("status not written after retries: %+v", got.Status)
	}
}

func TestMirrorPodLifecycle(t *testing.T) {
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "node-uid"}}
	client := fake.NewClientset(node)
	created := 0
	w := &Writer{Client: client}
	m := &Mirrors{Client: client, NodeName: "n1", OnCreate: func(p *v1.Pod) { created++; w.Resend(p.UID) }}
	ctx := context.Background()
	sp := staticPod("h1")
	// The status of a static pod waits for its mirror pod.
	w.PodStatusChanged(sp, running())
	if !w.Flush(ctx) {
		t.Fatal("a missing mirror pod counted as a write failure")
	}
	if err := m.Ensure(ctx, sp); err != nil {
		t.Fatal(err)
	}
	get := func() *v1.Pod {
		mp, err := client.CoreV1().Pods("kube-system").Get(ctx, "etcd-n1", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("mirror pod: %v", err)
		}
		return mp
	}
	mp := get()
	if mp.Annotations[apisource.MirrorAnnotation] != "h1" || len(mp.OwnerReferences) != 1 ||
		mp.OwnerReferences[0].Kind != "Node" || mp.OwnerReferences[0].UID != "node-uid" || mp.Labels["app"] != "etcd" {
		t.Fatalf("mirror pod: annotations %v owners %v labels %v", mp.Annotations, mp.OwnerReferences, mp.Labels)
	}
	w.Flush(ctx)
	if get().Status.PodIP != "10.0.0.5" {
		t.Fatal("static pod status not written to its mirror pod")
	}
	// Reconciled on every sync: current → untouched.
	client.ClearActions()
	if err := m.Ensure(ctx, sp); err != nil || countVerb(client, "create", "")+countVerb(client, "delete", "") != 0 {
		t.Fatalf("a current mirror pod was touched: err=%v actions=%v", err, client.Actions())
	}
	// Deleted by someone → recreated.
	if err := client.CoreV1().Pods("kube-system").Delete(ctx, "etcd-n1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := m.Ensure(ctx, sp); err != nil {
		t.Fatal(err)
	}
	w.Flush(ctx)
	if get().Status.PodIP != "10.0.0.5" {
		t.Fatal("status not written again to a recreated mirror pod")
	}
	// The manifest changed → the stale mirror pod is replaced.
	sp2 := staticPod("h2")
	if err := m.Ensure(ctx, sp2); err != nil {
		t.Fatal(err)
	}
	if mp := get(); mp.Annotations[apisource.MirrorAnnotation] != "h2" || mp.Spec.Containers[0].Image != "etcd:h2" {
		t.Fatalf("stale mirror pod not replaced: %v %s", mp.Annotations, mp.Spec.Containers[0].Image)
	}
	if created != 3 {
		t.Fatalf("%d mirror pods created, want 3", created)
	}
	// Removing the old version leaves the new mirror pod; removing the current one deletes it.
	if err := m.Delete(ctx, sp); err != nil {
		t.Fatal(err)
	}
	get()
	if err := m.Delete(ctx, sp2); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Pods("kube-system").Get(ctx, "etcd-n1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("mirror pod of a removed static pod: %v", err)
	}
	// API pods get no mirror.
	client.ClearActions()
	if err := m.Ensure(ctx, apiPod()); err != nil || len(client.Actions()) != 0 {
		t.Fatalf("mirror for an API pod: %v %v", err, client.Actions())
	}
}

func TestMirrorNeverReplacesAnAPIPod(t *testing.T) {
	sp := staticPod("h1")
	clash := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: sp.Name, Namespace: sp.Namespace, UID: "api"}}
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, clash)
	m := &Mirrors{Client: client, NodeName: "n1"}
	if err := m.Ensure(context.Background(), sp); err == nil {
		t.Fatal("no error for a name clash with an API pod")
	}
	got, _ := client.CoreV1().Pods(sp.Namespace).Get(context.Background(), sp.Name, metav1.GetOptions{})
	if got.UID != "api" {
		t.Fatal("the API pod was replaced")
	}
}

func TestSweepDeletesOrphanedMirrorsOnly(t *testing.T) {
	mirror := func(name, node string) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name),
			Annotations: map[string]string{apisource.MirrorAnnotation: "h"}}, Spec: v1.PodSpec{NodeName: node}}
	}
	plain := apiPod()
	client := fake.NewClientset(mirror("kept-n1", "n1"), mirror("gone-n1", "n1"), mirror("gone-n2", "n2"), plain)
	m := &Mirrors{Client: client, NodeName: "n1"}
	ctx := context.Background()
	if err := m.Sweep(ctx, map[string]bool{"default/kept-n1": true}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"kept-n1": true, "gone-n1": false, "gone-n2": true, "web": true} {
		_, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if exists := err == nil; exists != want {
			t.Errorf("%s exists=%v, want %v", name, exists, want)
		}
	}
}

// TestWriterWritesPodsInParallel: a flush does not write one pod at a time
// (each write is two API round trips; a batch of starting pods waits on
// them). An HTTP API stand-in holds every pod read until a second one is in
// flight, so a writer that serialises pods times out and fails. (The fake
// clientset cannot show this: it runs one request at a time.)
func TestWriterWritesPodsInParallel(t *testing.T) {
	var mu sync.Mutex
	inflight, most, updates := 0, 0, 0
	two := make(chan struct{})
	var twoOnce sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		name := path.Base(strings.TrimSuffix(r.URL.Path, "/status"))
		if r.Method == http.MethodPut {
			mu.Lock()
			updates++
			mu.Unlock()
			body, _ := io.ReadAll(r.Body)
			rw.Header().Set("Content-Type", "application/json")
			_, _ = rw.Write(body)
			return
		}
		mu.Lock()
		inflight++
		most = max(most, inflight)
		if inflight == 2 {
			twoOnce.Do(func() { close(two) })
		}
		mu.Unlock()
		select {
		case <-two:
		case <-time.After(5 * time.Second):
		}
		mu.Lock()
		inflight--
		mu.Unlock()
		p := apiPod()
		p.Name, p.UID = name, types.UID("uid-"+name)
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(p)
	}))
	defer srv.Close()
	client, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL, QPS: -1, ContentConfig: rest.ContentConfig{ContentType: "application/json"}})
	if err != nil {
		t.Fatal(err)
	}
	w := &Writer{Client: client}
	for i := range 4 {
		p := apiPod()
		p.Name = fmt.Sprintf("web-%d", i)
		p.UID = types.UID("uid-" + p.Name)
		w.PodStatusChanged(p, running())
	}
	if !w.Flush(context.Background()) {
		t.Fatal("flush failed")
	}
	if most < 2 {
		t.Fatalf("at most %d status write in flight, want several pods written at once", most)
	}
	if updates != 4 {
		t.Fatalf("%d status writes, want 4", updates)
	}
}
