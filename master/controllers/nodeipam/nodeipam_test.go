package nodeipam

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/fakeapi"
)

func TestCIDRSet(t *testing.T) {
	s, err := NewCIDRSet("10.244.0.0/16", 24)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Occupy("10.244.0.0/24", "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Occupy("10.244.0.0/24", "b"); err == nil {
		t.Fatal("second owner of one CIDR accepted")
	}
	for _, bad := range []string{"10.245.0.0/24", "10.244.0.0/25", "10.244.0.1/24", "junk"} {
		if err := s.Occupy(bad, "x"); err == nil {
			t.Errorf("Occupy(%q) accepted", bad)
		}
	}
	seen := map[string]string{"10.244.0.0/24": "a"}
	for i := 1; i < 256; i++ {
		owner := fmt.Sprintf("n%d", i)
		c, err := s.Allocate(owner)
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		if prev, dup := seen[c]; dup {
			t.Fatalf("%s given to %s and %s", c, prev, owner)
		}
		seen[c] = owner
	}
	if c, _ := s.Allocate("n7"); seen[c] != "n7" {
		t.Fatal("Allocate for an owner that has a CIDR returned another one")
	}
	if _, err := s.Allocate("extra"); !errors.Is(err, ErrFull) {
		t.Fatalf("257th allocation: %v, want ErrFull", err)
	}
	s.Release("n7")
	if c, err := s.Allocate("extra"); err != nil || seen[c] != "n7" {
		t.Fatalf("after release got %q %v", c, err)
	}
	if _, err := NewCIDRSet("10.244.0.0/16", 8); err == nil {
		t.Fatal("mask shorter than the cluster CIDR accepted")
	}
}

func node(name, cidr string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDR: cidr}}
	if cidr != "" {
		n.Spec.PodCIDRs = []string{cidr}
	}
	return n
}

func runController(t *testing.T, client kubernetes.Interface) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(client, factory, Config{})
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		factory.Shutdown()
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			stop()
		}
	})
	return stop
}

func cidrs(t *testing.T, client kubernetes.Interface) map[string]string {
	l, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range l.Items {
		out[n.Name] = n.Spec.PodCIDR
		if n.Spec.PodCIDR != "" && (len(n.Spec.PodCIDRs) != 1 || n.Spec.PodCIDRs[0] != n.Spec.PodCIDR) {
			t.Errorf("node %s podCIDRs %v != podCIDR %s", n.Name, n.Spec.PodCIDRs, n.Spec.PodCIDR)
		}
	}
	return out
}

func waitAllAssigned(t *testing.T, client kubernetes.Interface, n int) map[string]string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := cidrs(t, client)
		done := len(got) == n
		for _, c := range got {
			done = done && c != ""
		}
		if done {
			unique := map[string]bool{}
			for name, c := range got {
				if unique[c] {
					t.Fatalf("CIDR %s assigned twice (%v), node %s", c, got, name)
				}
				unique[c] = true
			}
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("not all nodes got a CIDR: %v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAssignsRebuildsAndReleases(t *testing.T) {
	// Existing nodes hold .0 and .1; the new ones must not get them.
	client := fakeapi.New(node("old0", "10.244.0.0/24"), node("old1", "10.244.1.0/24"), node("new0", ""), node("new1", ""))
	stop := runController(t, client)
	got := waitAllAssigned(t, client, 4)
	if got["old0"] != "10.244.0.0/24" || got["old1"] != "10.244.1.0/24" {
		t.Fatalf("existing CIDRs changed: %v", got)
	}

	// Restart: a fresh controller rebuilds from the nodes and keeps going.
	stop()
	runController(t, client)
	ctx := context.Background()
	if _, err := client.CoreV1().Nodes().Create(ctx, node("late", ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got2 := waitAllAssigned(t, client, 5)
	for name, c := range got {
		if got2[name] != c {
			t.Fatalf("restart changed %s: %s -> %s", name, c, got2[name])
		}
	}

	// Delete a node: its CIDR becomes free again, and is handed out only
	// after the rest of the pool (round robin), never to two nodes at once.
	if err := client.CoreV1().Nodes().Delete(ctx, "old1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, node("after", ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got3 := waitAllAssigned(t, client, 5)
	if got3["after"] == "10.244.1.0/24" {
		t.Fatalf("released CIDR reused immediately instead of round robin: %v", got3)
	}
}
