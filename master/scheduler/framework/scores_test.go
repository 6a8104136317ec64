package framework

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestResourceScores(t *testing.T) {
	req := Resource{MilliCPU: 1000, Memory: 1 << 30}
	empty := info(node("empty", "4", "4Gi"))
	busy := info(node("busy", "4", "4Gi"), pod("o", "2", "2Gi"))
	skewed := info(node("skewed", "4", "4Gi"), pod("o", "2", "0"))
	cases := []struct {
		name      string
		ni        *NodeInfo
		least, bl int64
	}{
		{"empty", empty, 75, 100},
		{"busy", busy, 25, 100},
		// cpu 3/4 used (25 free); memory 1Gi + the 200Mi scoring default of o
		// (it asks for none) = 1224Mi/4Gi (70 free): (25+70)/2 = 47.
		{"skewed", skewed, 47, 77},
	}
	for _, c := range cases {
		if got := LeastAllocatedScore(req, c.ni); got != c.least {
			t.Errorf("%s: least allocated = %d, want %d", c.name, got, c.least)
		}
		if got := BalancedAllocationScore(req, c.ni); got != c.bl {
			t.Errorf("%s: balanced = %d, want %d", c.name, got, c.bl)
		}
	}
}

func TestScoreSpreadsOwnerAndPrefersAffinity(t *testing.T) {
	a := info(node("a", "4", "4Gi"), pod("o1", "", "", withOwner("rs")))
	b := info(node("b", "4", "4Gi"))
	p := pod("p", "", "", withOwner("rs"))
	s := Score(p, PreFilter(p, []*NodeInfo{a, b}), []*NodeInfo{a, b})
	if s[1] <= s[0] {
		t.Fatalf("spread: scores a=%d b=%d, want b higher", s[0], s[1])
	}
	a.Node.Labels["disk"] = "ssd"
	pref := pod("q", "", "", func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{
			{Weight: 50, Preference: expr("disk", corev1.NodeSelectorOpIn, "ssd")}}}}
	})
	s = Score(pref, PreFilter(pref, []*NodeInfo{a, b}), []*NodeInfo{a, b})
	if s[0] <= s[1] {
		t.Fatalf("preferred affinity: scores a=%d b=%d, want a higher", s[0], s[1])
	}
	if PreferredNodeAffinityWeight(pref, a.Node) != 50 || PreferredNodeAffinityWeight(pref, b.Node) != 0 {
		t.Fatal("preferred weight wrong")
	}
}

func TestSelectHostRotatesTies(t *testing.T) {
	if SelectHost([]int64{5, 9, 9}, 0) != 1 || SelectHost([]int64{5, 9, 9}, 2) != 2 || SelectHost([]int64{7, 3}, 1) != 0 {
		t.Fatal("SelectHost picked wrong index")
	}
}
