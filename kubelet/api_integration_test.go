package kubelet

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/hoist-project/hoist/kubelet/apisource"
	"github.com/hoist-project/hoist/packaging/images"
)

// testAPISide is a subtest of TestIntegrationKubelet: the kubelet's API side
// wired into a real kubelet (real containerd and CNI), with client-go's fake
// clientset standing in for the master until hoist's own is ready.
func testAPISide(t *testing.T, s *suite) {
	n := s.newNode(t, 16)
	client := fake.NewClientset()
	n.cfg.Client = client
	ctx := context.Background()
	t.Cleanup(func() { // before the node's teardown: it only empties the manifest dir
		pods, _ := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		for _, p := range pods.Items {
			_ = client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
		}
	})
	// The mirror of a static pod removed while the kubelet was down.
	ghost := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ghost-" + n.name, Namespace: "default", UID: "ghost-uid",
		Annotations: map[string]string{apisource.MirrorAnnotation: "old"}}, Spec: v1.PodSpec{NodeName: n.name}}
	if _, err := client.CoreV1().Pods("default").Create(ctx, ghost, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.start()
	waitFor(t, 60*time.Second, "orphaned mirror pod swept", func() (bool, string) {
		_, err := client.CoreV1().Pods("default").Get(ctx, ghost.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})

	waitFor(t, 60*time.Second, "node registered, Ready, with a lease", func() (bool, string) {
		node, err := client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if _, err := client.CoordinationV1().Leases("kube-node-lease").Get(ctx, n.name, metav1.GetOptions{}); err != nil {
			return false, "lease: " + err.Error()
		}
		for _, c := range node.Status.Conditions {
			if c.Type == v1.NodeReady {
				return c.Status == v1.ConditionTrue && node.Status.NodeInfo.ContainerRuntimeVersion != "", fmt.Sprintf("%+v %q", c, node.Status.NodeInfo.ContainerRuntimeVersion)
			}
		}
		return false, "no Ready condition"
	})

	// An API pod bound to this node runs, and its status lands in the API.
	grace := int64(1)
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "api-web", Namespace: "default", UID: "api-web-uid-1"},
		Spec: v1.PodSpec{NodeName: n.name, TerminationGracePeriodSeconds: &grace, Containers: []v1.Container{{
			Name: "web", Image: images.TestboxImage, Args: []string{"netexec", "--http-port=8080", "--udp-port=0"},
		}}},
	}
	other := pod.DeepCopy()
	other.Name, other.UID, other.Spec.NodeName = "elsewhere", "other-uid", "some-other-node"
	for _, p := range []*v1.Pod{pod, other} {
		if _, err := client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 60*time.Second, "API pod Running in the API", func() (bool, string) {
		p, err := client.CoreV1().Pods("default").Get(ctx, "api-web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return p.Status.Phase == v1.PodRunning && p.Status.PodIP != "", fmt.Sprintf("phase %s ip %q", p.Status.Phase, p.Status.PodIP)
	})

	// A static pod gets a mirror pod, recreated when deleted.
	n.write("static.yaml", podYAML("static", `  containers:
  - name: c
    image: `+images.TestboxImage+`
    args: [sleep]
`))
	mirror := n.podName("static")
	waitMirror := func() {
		t.Helper()
		waitFor(t, 60*time.Second, "mirror pod", func() (bool, string) {
			mp, err := client.CoreV1().Pods("default").Get(ctx, mirror, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return mp.Annotations[apisource.MirrorAnnotation] != "" && mp.Status.Phase == v1.PodRunning, fmt.Sprintf("%v %s", mp.Annotations, mp.Status.Phase)
		})
	}
	waitMirror()
	if err := client.CoreV1().Pods("default").Delete(ctx, mirror, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitMirror()
	if inv := n.inventory(); len(inv.containers) != 4 {
		t.Fatalf("want 4 containers (2 pods; the other node's pod not run), got %+v", inv)
	}

	// Graceful deletion, as the API server marks it.
	p, _ := client.CoreV1().Pods("default").Get(ctx, "api-web", metav1.GetOptions{})
	now := metav1.Now()
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, &grace
	if _, err := client.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "API pod killed and finally deleted", func() (bool, string) {
		_, err := client.CoreV1().Pods("default").Get(ctx, "api-web", metav1.GetOptions{})
		inv := n.inventory()
		return apierrors.IsNotFound(err) && len(inv.containers) == 2, fmt.Sprintf("get: %v, %+v", err, inv)
	})
	n.remove("static.yaml")
	waitFor(t, 30*time.Second, "mirror pod removed with its static pod", func() (bool, string) {
		_, err := client.CoreV1().Pods("default").Get(ctx, mirror, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	n.waitClean(30 * time.Second)
}
