package podgc

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrltest"
	"github.com/hoist-project/hoist/master/controllers/fakeapi"
)

func pod(name, node string, terminating bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name)}, Spec: corev1.PodSpec{NodeName: node}}
	if terminating {
		now := metav1.Now()
		p.DeletionTimestamp = &now
	}
	return p
}

func TestDoomed(t *testing.T) {
	checks := map[string]int{}
	gone := func(n string) bool { checks[n]++; return n == "dead" }
	got := Doomed([]*corev1.Pod{
		pod("a", "live", false), pod("b", "dead", false), pod("c", "dead", true),
		pod("d", "", false), pod("e", "", true), pod("f", "live", true),
	}, gone)
	var names []string
	for _, p := range got {
		names = append(names, p.Name)
	}
	if len(names) != 3 || names[0] != "b" || names[1] != "c" || names[2] != "e" {
		t.Fatalf("doomed %v, want [b c e]", names)
	}
	if checks["dead"] != 1 || checks["live"] != 1 {
		t.Fatalf("node checks %v: want one per node", checks)
	}
}

func TestCollectorDeletesPodsOfDeletedNodes(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "live"}}
	client := fakeapi.New(node, pod("keep", "live", false), pod("orphan", "deleted", false), pod("pending", "", false))
	ctrltest.Start(t, client, func(f informers.SharedInformerFactory) ctrltest.Runner {
		return New(client, f, Config{Period: 20 * time.Millisecond})
	})
	ctx := context.Background()
	ctrltest.WaitFor(t, "the orphan force-deleted", func() bool {
		_, err := client.CoreV1().Pods("default").Get(ctx, "orphan", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	for _, name := range []string{"keep", "pending"} {
		if _, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Fatalf("pod %s: %v", name, err)
		}
	}
}
