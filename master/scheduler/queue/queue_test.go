package queue

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func pod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
}

func TestUnschedulableWaitsForMove(t *testing.T) {
	now := time.Unix(0, 0)
	q := New(func() time.Time { return now })
	q.Add(pod("a"))
	p, cycle, _ := q.Pop()
	q.AddUnschedulable(p, cycle)
	if a, u := q.Lens(); a != 0 || u != 1 {
		t.Fatalf("lens = %d,%d, want 0,1", a, u)
	}
	q.Update(pod("a")) // status-only change: stays parked
	if a, _ := q.Lens(); a != 0 {
		t.Fatalf("update moved the pod to active")
	}
	q.MoveAllToActive()
	if a, u := q.Lens(); a != 1 || u != 0 {
		t.Fatalf("after move lens = %d,%d, want 1,0", a, u)
	}
}

func TestRaceWithMoveGoesActive(t *testing.T) {
	q := New(time.Now)
	q.Add(pod("a"))
	p, cycle, _ := q.Pop()
	q.MoveAllToActive() // a node was added while the attempt ran
	q.AddUnschedulable(p, cycle)
	if a, _ := q.Lens(); a != 1 {
		t.Fatalf("pod should be active after a concurrent move")
	}
}

func TestFlushStaleAndDeleteAndFIFO(t *testing.T) {
	now := time.Unix(0, 0)
	q := New(func() time.Time { return now })
	q.Add(pod("a"))
	q.Add(pod("b"))
	q.Add(pod("a")) // dedup
	if a, _ := q.Lens(); a != 2 {
		t.Fatalf("active = %d, want 2", a)
	}
	p, c, _ := q.Pop()
	if p.Name != "a" {
		t.Fatalf("popped %s, want a", p.Name)
	}
	q.AddUnschedulable(p, c)
	q.Delete(pod("b"))
	now = now.Add(time.Minute)
	q.FlushStale(5 * time.Minute)
	if a, u := q.Lens(); a != 0 || u != 1 {
		t.Fatalf("lens = %d,%d, want 0,1", a, u)
	}
	now = now.Add(5 * time.Minute)
	q.FlushStale(5 * time.Minute)
	if a, u := q.Lens(); a != 1 || u != 0 {
		t.Fatalf("lens = %d,%d, want 1,0", a, u)
	}
	q.Close()
	q.Pop()
	if _, _, ok := q.Pop(); ok {
		t.Fatal("Pop after Close returned ok")
	}
}
