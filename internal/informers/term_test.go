package informers

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	"github.com/hoist-project/hoist/internal/testenv"
)

// Two terms of a component over one shared factory: one cache, listed
// once; a term's handlers stop at its end; a later term's handlers see
// every object; ending a term neither stops the informer nor its cache.
func TestTermsShareOneInformerAndDropTheirHandlers(t *testing.T) {
	client := fake.NewClientset(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p0", Namespace: "default"}})
	var lists atomic.Int32
	client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		lists.Add(1)
		return false, nil, nil
	})
	process, stopProcess := context.WithCancel(context.Background())
	defer stopProcess()
	shared := NewSharedInformerFactory(client, 0)
	defer shared.Shutdown()
	defer stopProcess() // Shutdown waits for the informers, which stop with the process

	counter := func(n *atomic.Int32) cache.ResourceEventHandlerFuncs {
		return cache.ResourceEventHandlerFuncs{AddFunc: func(any) { n.Add(1) }}
	}
	createPod := func(name string) {
		t.Helper()
		_, err := client.CoreV1().Pods("default").Create(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}

	term1, end1 := context.WithCancel(process)
	f1 := Term(term1, shared, process.Done())
	inf1 := f1.Core().V1().Pods().Informer()
	var seen1 atomic.Int32
	if _, err := inf1.AddEventHandler(counter(&seen1)); err != nil {
		t.Fatal(err)
	}
	f1.Start(term1.Done())
	f1.WaitForCacheSync(term1.Done())
	createPod("p1")
	testenv.WaitUntil(t, 5*time.Second, "term 1 sees p0 and p1", func() bool { return seen1.Load() == 2 })

	ran := make(chan struct{})
	go func() { inf1.Run(term1.Done()); close(ran) }()
	end1()
	<-ran
	f1.(*term).removals.Wait() // the handler is gone before p2 exists
	createPod("p2")

	term2, end2 := context.WithCancel(process)
	defer end2()
	f2 := Term(term2, shared, process.Done())
	inf2 := f2.Core().V1().Pods().Informer()
	if inf1.GetStore() != inf2.GetStore() {
		t.Fatal("the terms hold different caches")
	}
	var seen2 atomic.Int32
	if _, err := inf2.AddEventHandler(counter(&seen2)); err != nil {
		t.Fatal(err)
	}
	f2.Start(term2.Done())
	testenv.WaitUntil(t, 5*time.Second, "term 2 sees p0, p1 and p2 (the cache kept running)", func() bool { return seen2.Load() == 3 })
	if n := seen1.Load(); n != 2 {
		t.Fatalf("term 1's handler saw %d adds, want 2: it outlived its term", n)
	}
	if n := lists.Load(); n != 1 {
		t.Fatalf("pods listed %d times, want once for both terms", n)
	}
}

// A term's informer is synced only once its own handlers have been handed
// what the shared cache already holds.
func TestTermHasSyncedWaitsForItsHandlers(t *testing.T) {
	client := fake.NewClientset(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p0", Namespace: "default"}})
	process, stopProcess := context.WithCancel(context.Background())
	shared := NewSharedInformerFactory(client, 0)
	defer shared.Shutdown()
	defer stopProcess()
	early := Term(process, shared, process.Done())
	early.Core().V1().Pods().Informer()
	early.Start(process.Done())
	early.WaitForCacheSync(process.Done())

	late := Term(process, shared, process.Done())
	release := make(chan struct{})
	_, err := late.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(any) { <-release }})
	if err != nil {
		t.Fatal(err)
	}
	// Asked through a second accessor call, as controllers do.
	synced := late.Core().V1().Pods().Informer().HasSynced
	if synced() {
		t.Fatal("synced before the new handler got the cached pod")
	}
	close(release)
	testenv.WaitUntil(t, 5*time.Second, "synced once the handler has the pod", synced)
}
