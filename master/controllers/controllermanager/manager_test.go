package controllermanager

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrltest"
	"github.com/hoist-project/hoist/master/controllers/fakeapi"
	"github.com/hoist-project/hoist/master/controllers/garbagecollector"
	"github.com/hoist-project/hoist/master/controllers/nodeipam"
)

func nodeipamCfg(cidr string) nodeipam.Config { return nodeipam.Config{ClusterCIDR: cidr} }

// gcCfg gives the garbage collector a fake dynamic client (the fake typed
// client has no connection to build one on).
func gcCfg() garbagecollector.Config {
	return garbagecollector.Config{Dynamic: dynamicfake.NewSimpleDynamicClient(runtime.NewScheme())}
}

func TestNewValidatesAndDisables(t *testing.T) {
	client := fakeapi.New()
	f := informers.NewSharedInformerFactory(client, 0)
	if _, err := New(client, f, Config{Disabled: map[string]bool{"nope": true}}); err == nil {
		t.Fatal("unknown disabled controller accepted")
	}
	if _, err := New(client, f, Config{NodeIPAM: nodeipamCfg("garbage")}); err == nil {
		t.Fatal("bad cluster CIDR accepted")
	}
	m, err := New(client, f, Config{Disabled: map[string]bool{"nodeipam": true}, GarbageCollector: gcCfg()})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"daemonset", "deployment", "disruption", "endpoints", "garbagecollector", "job", "nodelifecycle", "podgc", "replicaset", "replicationcontroller", "serviceaccount", "statefulset"}
	if got := m.Running(); !reflect.DeepEqual(got, want) {
		t.Fatalf("running = %v, want %v", got, want)
	}
}

// TestDeploymentToPods runs the whole manager: a Deployment becomes a
// ReplicaSet becomes pods, through the shared informers.
func TestDeploymentToPods(t *testing.T) {
	two := int32(2)
	labels := map[string]string{"app": "x"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "x", UID: "d"},
		Spec: appsv1.DeploymentSpec{Replicas: &two, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}},
	}
	client := fakeapi.New(d)
	f := informers.NewSharedInformerFactory(client, 0)
	m, err := New(client, f, Config{GarbageCollector: gcCfg()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pods, _ := client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
		if len(pods.Items) == 2 {
			if pods.Items[0].Labels["pod-template-hash"] == "" {
				t.Fatalf("pod lacks pod-template-hash: %v", pods.Items[0].Labels)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pods, want 2", len(pods.Items))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
}

func TestLeaderElectionOneAtATime(t *testing.T) {
	client := fakeapi.New()
	var active, maxActive atomic.Int32
	var mu sync.Mutex
	leaders := map[string]bool{}
	run := func(id string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			n := active.Add(1)
			for {
				m := maxActive.Load()
				if n <= m || maxActive.CompareAndSwap(m, n) {
					break
				}
			}
			mu.Lock()
			leaders[id] = true
			mu.Unlock()
			<-ctx.Done()
			active.Add(-1)
			return nil
		}
	}
	cfg := func(id string) LeaderConfig {
		return LeaderConfig{Name: "hoist-test", Identity: id, LeaseDuration: time.Second, RenewDeadline: 500 * time.Millisecond, RetryPeriod: 50 * time.Millisecond}
	}
	ctxA, cancelA := context.WithCancel(context.Background())
	ctxB, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	errA, errB := make(chan error, 1), make(chan error, 1)
	go func() { errA <- RunLeaderElected(ctxA, client, cfg("a"), run("a")) }()
	ctrltest.WaitFor(t, "first leader", func() bool { return active.Load() == 1 })
	go func() { errB <- RunLeaderElected(ctxB, client, cfg("b"), run("b")) }()
	time.Sleep(300 * time.Millisecond) // observation window: b must stay a follower
	if active.Load() != 1 {
		t.Fatalf("%d leaders while a holds the lease", active.Load())
	}
	cancelA() // releases the lease
	if err := <-errA; err != nil {
		t.Fatalf("leader a: %v", err)
	}
	ctrltest.WaitFor(t, "b takes over", func() bool { mu.Lock(); defer mu.Unlock(); return leaders["b"] })
	if maxActive.Load() != 1 {
		t.Fatalf("max simultaneous leaders = %d", maxActive.Load())
	}
	cancelB()
	if err := <-errB; err != nil && !errors.Is(err, ErrLostLeadership) {
		t.Fatalf("leader b: %v", err)
	}
	if err := RunLeaderElected(context.Background(), client, LeaderConfig{}, nil); err == nil {
		t.Fatal("missing lease name accepted")
	}
}
