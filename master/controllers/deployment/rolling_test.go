package deployment

import (
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func ios(s string) *intstr.IntOrString { v := intstr.Parse(s); return &v }

func TestResolveFenceposts(t *testing.T) {
	cases := []struct {
		surge, unavail      string // "" = default
		desired             int32
		wantSurge, wantUnav int32
		wantErr             bool
	}{
		{"", "", 10, 3, 2, false},      // 25%: 2.5 -> surge 3, unavailable 2
		{"", "", 1, 1, 0, false},       // 0.25 -> surge 1, unavailable 0
		{"25%", "25%", 4, 1, 1, false}, // exact
		{"1", "0", 3, 1, 0, false},
		{"0", "1", 3, 0, 1, false},
		{"0", "10%", 5, 0, 1, false}, // 0.5 rounds down to 0: fencepost bumps to 1
		{"50%", "50%", 3, 2, 1, false},
		{"100%", "0%", 7, 7, 0, false},
		{"0", "0", 3, 0, 0, true},
		{"0%", "0%", 3, 0, 0, true},
		{"abc", "1", 3, 0, 0, true},
		{"-1", "1", 3, 0, 0, true},
	}
	for _, c := range cases {
		ru := &appsv1.RollingUpdateDeployment{}
		if c.surge != "" {
			ru.MaxSurge = ios(c.surge)
		}
		if c.unavail != "" {
			ru.MaxUnavailable = ios(c.unavail)
		}
		s, u, err := ResolveFenceposts(ru, c.desired)
		if (err != nil) != c.wantErr {
			t.Errorf("surge=%q unavail=%q: err = %v, wantErr %v", c.surge, c.unavail, err, c.wantErr)
			continue
		}
		if !c.wantErr && (s != c.wantSurge || u != c.wantUnav) {
			t.Errorf("surge=%q unavail=%q desired=%d: got %d/%d, want %d/%d", c.surge, c.unavail, c.desired, s, u, c.wantSurge, c.wantUnav)
		}
	}
}

func TestNewRSReplicas(t *testing.T) {
	cases := []struct {
		name           string
		desired, surge int32
		newR, want     int32
		old            []int32
	}{
		{"fresh rollout uses surge", 10, 3, 0, 3, []int32{10}},
		{"capped at total", 10, 3, 3, 3, []int32{10}},
		{"after old scaled down", 10, 3, 3, 6, []int32{7}},
		{"never above desired", 10, 3, 9, 10, []int32{0}},
		{"scale down new", 5, 1, 8, 5, nil},
		{"no surge waits", 3, 0, 0, 0, []int32{3}},
		{"no old: straight to desired", 4, 1, 0, 4, nil},
	}
	for _, c := range cases {
		var old []*RS
		for _, r := range c.old {
			old = append(old, &RS{Replicas: r, Available: r})
		}
		if got := NewRSReplicas(c.desired, c.surge, &RS{Replicas: c.newR}, old); got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, got, c.want)
		}
	}
}

func TestScaleDownOld(t *testing.T) {
	cases := []struct {
		name             string
		desired, unavail int32
		newRS            RS
		old              []RS
		want             []int32
	}{
		{"unavailable budget", 10, 2, RS{Replicas: 3}, []RS{{Replicas: 10, Available: 10}}, []int32{8}},
		{"new pods not yet available block", 10, 0, RS{Replicas: 1, Available: 0}, []RS{{Replicas: 10, Available: 10}}, []int32{10}},
		{"new available frees old", 10, 0, RS{Replicas: 1, Available: 1}, []RS{{Replicas: 10, Available: 10}}, []int32{9}},
		{"unhealthy old go first", 4, 1, RS{Replicas: 1}, []RS{{Replicas: 2, Available: 0}, {Replicas: 3, Available: 3}}, []int32{0, 3}},
		{"oldest first", 4, 2, RS{Replicas: 0}, []RS{{Replicas: 2, Available: 2}, {Replicas: 2, Available: 2}}, []int32{0, 2}},
		{"nothing old", 3, 1, RS{Replicas: 3, Available: 3}, []RS{{}}, []int32{0}},
		{"min available respected", 3, 1, RS{Replicas: 3, Available: 0}, []RS{{Replicas: 3, Available: 3}}, []int32{2}},
		{"at min available nothing goes", 3, 1, RS{Replicas: 3, Available: 0}, []RS{{Replicas: 2, Available: 2}}, []int32{2}},
	}
	for _, c := range cases {
		old := make([]*RS, len(c.old))
		for i := range c.old {
			old[i] = &c.old[i]
		}
		nr := c.newRS
		if got := ScaleDownOld(c.desired, c.unavail, &nr, old); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

// TestRollingNeverBelowMinAvailable simulates a rollout step by step, with
// every pod becoming available as soon as it exists, and checks the
// invariants: total <= desired+surge, available >= desired-unavailable.
func TestRollingNeverBelowMinAvailable(t *testing.T) {
	for _, p := range []struct{ surge, unavail string }{{"25%", "25%"}, {"0", "1"}, {"3", "0"}, {"100%", "0"}} {
		desired := int32(10)
		surge, unavail, err := ResolveFenceposts(&appsv1.RollingUpdateDeployment{MaxSurge: ios(p.surge), MaxUnavailable: ios(p.unavail)}, desired)
		if err != nil {
			t.Fatal(err)
		}
		newRS, old := &RS{}, []*RS{{Replicas: 10, Available: 10}}
		for step := 0; step < 50 && (newRS.Replicas != desired || old[0].Replicas != 0); step++ {
			newRS.Replicas = NewRSReplicas(desired, surge, newRS, old)
			if all, _ := total(append([]*RS{newRS}, old...)); all > desired+surge {
				t.Fatalf("%v: %d pods exceed desired+surge", p, all)
			}
			old[0].Replicas = ScaleDownOld(desired, unavail, newRS, old)[0]
			old[0].Available = min(old[0].Available, old[0].Replicas)
			if _, avail := total(append([]*RS{newRS}, old...)); avail < desired-unavail {
				t.Fatalf("%v: available %d below %d", p, avail, desired-unavail)
			}
			newRS.Available = newRS.Replicas // pods become ready
		}
		if newRS.Replicas != desired || old[0].Replicas != 0 {
			t.Fatalf("%v: rollout stuck at new=%d old=%d", p, newRS.Replicas, old[0].Replicas)
		}
	}
}

// An old ReplicaSet just scaled from 18 to 16 whose status still counts 18
// available pods must not let the next sync drop below desired -
// maxUnavailable.
func TestScaleDownOldWithStaleStatus(t *testing.T) {
	oldRS := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "old"},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptrInt32(16)}, Status: appsv1.ReplicaSetStatus{AvailableReplicas: 18}}
	newRS := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "new"},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptrInt32(6)}, Status: appsv1.ReplicaSetStatus{AvailableReplicas: 6}}
	got := ScaleDownOld(20, 2, rsOf(newRS), []*RS{rsOf(oldRS)})
	// Truly available afterwards: the new ReplicaSet's 6 plus whatever of
	// the old one's 16 running pods is kept.
	if avail := 6 + got[0]; avail < 18 {
		t.Fatalf("old ReplicaSet scaled to %d: %d available < 20 - 2", got[0], avail)
	}
}

func ptrInt32(v int32) *int32 { return &v }
