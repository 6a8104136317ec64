package hollow

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/hoist-project/hoist/internal/testenv"
)

// TestNodesOnFakeClient covers the wiring on a fake clientset; the real
// behaviour against a master is tested in test/integration/scale.
func TestNodesOnFakeClient(t *testing.T) {
	client := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := Start(ctx, Config{Client: client, Count: 3, LeaseInterval: 50 * time.Millisecond, NamePrefix: "h-"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	if got := n.Names(); len(got) != 3 || got[0] != "h-0" || got[2] != "h-2" {
		t.Fatalf("names %v", got)
	}
	node, err := client.CoreV1().Nodes().Get(ctx, "h-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cpu := node.Status.Allocatable.Cpu().Value(); cpu != 4 || node.Labels[LabelHollow] != "true" {
		t.Fatalf("node h-1: cpu %d labels %v", cpu, node.Labels)
	}
	leaseTime := func() time.Time {
		l, err := client.CoordinationV1().Leases("kube-node-lease").Get(ctx, "h-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return l.Spec.RenewTime.Time
	}
	first := leaseTime()
	testenv.WaitUntil(t, 30*time.Second, "lease h-1 renewed", func() bool { return leaseTime().After(first) })

	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "uid-p"},
		Spec: corev1.PodSpec{NodeName: "h-1", Containers: []corev1.Container{{Name: "c", Image: "pause"}}}}
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitUntil(t, 30*time.Second, "pod p running", func() bool {
		p, err := client.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
		return err == nil && isRunning(p) && p.Status.PodIP == "100.64.1.2"
	})

	// A terminating pod is deleted at once; one on a dead node is not.
	if err := n.StopHeartbeat("h-2"); err != nil {
		t.Fatal(err)
	}
	if err := n.StopHeartbeat("nope"); err == nil {
		t.Fatal("StopHeartbeat of an unknown node succeeded")
	}
	now := metav1.Now()
	for _, name := range []string{"gone", "stuck"} {
		nodeName := map[string]string{"gone": "h-0", "stuck": "h-2"}[name]
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: k8stypes.UID("uid-" + name), DeletionTimestamp: &now},
			Spec: corev1.PodSpec{NodeName: nodeName}}
		if _, err := client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitUntil(t, 30*time.Second, "terminating pod acknowledged", func() bool {
		_, err := client.CoreV1().Pods("default").Get(ctx, "gone", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if _, err := client.CoreV1().Pods("default").Get(ctx, "stuck", metav1.GetOptions{}); err != nil {
		t.Fatalf("pod on the dead node h-2 was deleted: %v", err)
	}
}
