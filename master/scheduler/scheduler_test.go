package scheduler

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/master/controllers/ctrltest"
	"github.com/hoist-project/hoist/master/controllers/fakeapi"
)

func testNode(name, cpu string, unschedulable bool) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Spec:       corev1.NodeSpec{Unschedulable: unschedulable},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
}

func testPod(name, cpu string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.PodSpec{SchedulerName: DefaultSchedulerName, Containers: []corev1.Container{{Name: "c",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}}},
	}
}

// start runs a scheduler over client until the test ends.
func start(t *testing.T, client kubernetes.Interface) *Scheduler {
	t.Helper()
	var s *Scheduler
	ctrltest.Start(t, client, func(f informers.SharedInformerFactory) ctrltest.Runner {
		s = New(client, f, Config{})
		return s
	})
	return s
}

func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, what, func() error {
		if ok, err := cond(); !ok {
			return fmt.Errorf("not yet (last error: %v)", err)
		}
		return nil
	})
}

func nodeOf(client kubernetes.Interface, name string) (string, error) {
	p, err := client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	return p.Spec.NodeName, nil
}

func TestSchedulerBindsSpreadsAndReportsFailures(t *testing.T) {
	client := fakeapi.New(testNode("n1", "2", false), testNode("n2", "2", false), testNode("n3", "8", true))
	s := start(t, client)
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		if _, err := client.CoreV1().Pods("default").Create(ctx, testPod(fmt.Sprintf("p%d", i), "1"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	perNode := map[string]int{}
	waitFor(t, "4 pods bound", func() (bool, error) {
		perNode = map[string]int{}
		for i := 0; i < 4; i++ {
			n, err := nodeOf(client, fmt.Sprintf("p%d", i))
			if err != nil || n == "" {
				return false, err
			}
			perNode[n]++
		}
		return true, nil
	})
	if perNode["n1"] != 2 || perNode["n2"] != 2 {
		t.Fatalf("placement = %v, want 2 on n1 and 2 on n2 (n3 is cordoned)", perNode)
	}

	// The fifth pod fits nowhere: one node cordoned, two full.
	if _, err := client.CoreV1().Pods("default").Create(ctx, testPod("big", "1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."
	waitFor(t, "FailedScheduling event", func() (bool, error) {
		evs, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Reason == "FailedScheduling" && e.InvolvedObject.Name == "big" {
				if e.Message != want || e.Type != corev1.EventTypeWarning {
					return false, fmt.Errorf("event %s %q, want %q", e.Type, e.Message, want)
				}
				return true, nil
			}
		}
		return false, nil
	})
	waitFor(t, "PodScheduled=False condition", func() (bool, error) {
		p, err := client.CoreV1().Pods("default").Get(ctx, "big", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == "Unschedulable" && strings.HasPrefix(c.Message, "0/3") {
				return true, nil
			}
		}
		return false, nil
	})

	// Nothing changes in the cluster: the pod must not be retried.
	before := s.Attempts()
	time.Sleep(200 * time.Millisecond) // observation window, not synchronisation
	if after := s.Attempts(); after-before > 1 {
		t.Fatalf("unschedulable pod retried %d times without a cluster event (busy loop)", after-before)
	}

	// A node joins: the pod is retried and lands there.
	if _, err := client.CoreV1().Nodes().Create(ctx, testNode("n4", "2", false), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "big bound to n4", func() (bool, error) {
		n, err := nodeOf(client, "big")
		return n == "n4", err
	})
	if a := s.Attempts(); a > 10 {
		t.Fatalf("%d scheduling attempts for 5 pods, want a handful", a)
	}
}

func TestSchedulerRetriesWhenPodDeleted(t *testing.T) {
	client := fakeapi.New(testNode("n1", "1", false))
	s := start(t, client)
	ctx := context.Background()
	for _, name := range []string{"a", "b"} {
		if _, err := client.CoreV1().Pods("default").Create(ctx, testPod(name, "1"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var bound, pending string
	waitFor(t, "one pod bound, one unschedulable", func() (bool, error) {
		na, _ := nodeOf(client, "a")
		nb, _ := nodeOf(client, "b")
		switch {
		case na != "" && nb == "":
			bound, pending = "a", "b"
		case nb != "" && na == "":
			bound, pending = "b", "a"
		default:
			return false, nil
		}
		_, u := s.queue.Lens()
		return u == 1, nil
	})
	if err := client.CoreV1().Pods("default").Delete(ctx, bound, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, pending+" bound after "+bound+" was deleted", func() (bool, error) {
		n, err := nodeOf(client, pending)
		return n == "n1", err
	})
}

func TestSchedulerIgnoresOtherSchedulers(t *testing.T) {
	client := fakeapi.New(testNode("n1", "4", false))
	s := start(t, client)
	ctx := context.Background()
	other := testPod("other", "1")
	other.Spec.SchedulerName = "my-scheduler"
	mine := testPod("mine", "1")
	for _, p := range []*corev1.Pod{other, mine} {
		if _, err := client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "mine bound", func() (bool, error) {
		n, err := nodeOf(client, "mine")
		return n == "n1", err
	})
	if n, _ := nodeOf(client, "other"); n != "" || s.Attempts() != 1 {
		t.Fatalf("pod of another scheduler bound to %q (attempts %d)", n, s.Attempts())
	}
}

func TestSchedulerRetriesWhenTaintRemoved(t *testing.T) {
	n := testNode("n1", "4", false)
	n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
	client := fakeapi.New(n)
	s := start(t, client)
	ctx := context.Background()
	if _, err := client.CoreV1().Pods("default").Create(ctx, testPod("p", "1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pod parked as unschedulable", func() (bool, error) {
		_, u := s.queue.Lens()
		return u == 1, nil
	})
	// A heartbeat-only node update must not retry the pod.
	before := s.Attempts()
	cur, _ := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	cur.Status.Conditions[0].LastHeartbeatTime = metav1.Now()
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cur, _ = client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	cur.Spec.Taints = nil
	if _, err := client.CoreV1().Nodes().Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pod bound after the taint was removed", func() (bool, error) {
		n, err := nodeOf(client, "p")
		return n == "n1", err
	})
	if a := s.Attempts() - before; a != 1 {
		t.Fatalf("%d attempts after the node changes, want exactly 1 (heartbeat must not retry)", a)
	}
}
