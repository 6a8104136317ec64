package ctrlutil

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

func TestExpectations(t *testing.T) {
	now := time.Unix(0, 0)
	e := NewExpectations(func() time.Time { return now })
	if !e.Satisfied("k") {
		t.Fatal("unknown key must be satisfied")
	}
	e.Expect("k", 2, 1)
	e.Observed("k", 1, 1)
	if e.Satisfied("k") {
		t.Fatal("one creation still pending")
	}
	e.Observed("k", 1, 0)
	if !e.Satisfied("k") {
		t.Fatal("all observed")
	}
	e.Expect("k", 1, 0)
	now = now.Add(ExpectationsTimeout + time.Second)
	if !e.Satisfied("k") {
		t.Fatal("expired expectations must not block forever")
	}
}

func TestDecideClaims(t *testing.T) {
	tr := true
	sel := labels.SelectorFromSet(labels.Set{"app": "a"})
	pod := func(lbl string, owner string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": lbl}}}
		if owner != "" {
			p.OwnerReferences = []metav1.OwnerReference{{UID: types.UID("u-" + owner), Controller: &tr}}
		}
		return p
	}
	cases := []struct {
		name     string
		p        *corev1.Pod
		deleting bool
		want     Claim
	}{
		{"owned", pod("a", "me"), false, Owned},
		{"orphan matching", pod("a", ""), false, Adopt},
		{"orphan, owner deleting", pod("a", ""), true, Ignore},
		{"ours, stopped matching", pod("b", "me"), false, Release},
		{"ours, stopped matching, owner deleting", pod("b", "me"), true, Owned},
		{"someone else's", pod("a", "other"), false, Ignore},
		{"orphan not matching", pod("b", ""), false, Ignore},
	}
	for _, c := range cases {
		if got := Decide(c.p, "u-me", sel, c.deleting); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSlowStart(t *testing.T) {
	var calls atomic.Int32
	n, err := SlowStart(context.Background(), 10, func(context.Context) error { calls.Add(1); return nil })
	if n != 10 || err != nil || calls.Load() != 10 {
		t.Fatalf("all succeed: %d %v calls %d", n, err, calls.Load())
	}
	calls.Store(0)
	boom := errors.New("quota")
	n, err = SlowStart(context.Background(), 100, func(context.Context) error {
		if calls.Add(1) > 3 {
			return boom
		}
		return nil
	})
	// Batches 1 and 2 succeed (3 calls); batch 4 fails: 7 calls, not 100.
	if !errors.Is(err, boom) || n != 3 || calls.Load() != 7 {
		t.Fatalf("failing: succeeded %d err %v calls %d", n, err, calls.Load())
	}
}

func TestPatchesAndReadiness(t *testing.T) {
	owner := &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "rc", UID: "rc-uid"}}
	var adopt map[string]map[string]any
	if err := json.Unmarshal(AdoptPatch(owner, corev1.SchemeGroupVersion.WithKind("ReplicationController"), "pod-uid"), &adopt); err != nil {
		t.Fatal(err)
	}
	if adopt["metadata"]["uid"] != "pod-uid" || adopt["metadata"]["ownerReferences"] == nil {
		t.Fatalf("adopt patch = %v", adopt)
	}
	if got := string(ReleasePatch("rc-uid", "pod-uid")); got != `{"metadata":{"ownerReferences":[{"$patch":"delete","uid":"rc-uid"}],"uid":"pod-uid"}}` {
		t.Fatalf("release patch = %s", got)
	}
	now := time.Unix(1000, 0)
	p := &corev1.Pod{Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-5 * time.Second))}}}}
	if ok, wait := PodAvailable(p, 10*time.Second, now); ok || wait != 5*time.Second {
		t.Fatalf("available %v wait %v, want false 5s", ok, wait)
	}
	if ok, _ := PodAvailable(p, 5*time.Second, now); !ok {
		t.Fatal("ready for minReadySeconds must be available")
	}
	if TemplateHash(&corev1.PodTemplateSpec{}, nil) == TemplateHash(&corev1.PodTemplateSpec{}, new(int32)) {
		t.Fatal("collision count must change the hash")
	}
}
