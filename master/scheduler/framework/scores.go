package framework

import (
	"fmt"
	"math"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// MaxScore is the top score of one scoring function.
const MaxScore = 100

// LeastAllocatedScore favours nodes with the most free cpu and memory after
// placing the pod (upstream NodeResourcesFit LeastAllocated, equal weights).
func LeastAllocatedScore(pod Resource, ni *NodeInfo) int64 {
	free := func(req, alloc int64) int64 {
		if alloc == 0 || req > alloc {
			return 0
		}
		return (alloc - req) * MaxScore / alloc
	}
	cpu := free(ni.NonZeroRequested.MilliCPU+pod.MilliCPU, ni.Allocatable.MilliCPU)
	mem := free(ni.NonZeroRequested.Memory+pod.Memory, ni.Allocatable.Memory)
	return (cpu + mem) / 2
}

// BalancedAllocationScore favours nodes whose cpu and memory utilisation
// stay close to each other after placing the pod: (1 - stddev) * 100.
func BalancedAllocationScore(pod Resource, ni *NodeInfo) int64 {
	frac := func(req, alloc int64) float64 {
		if alloc == 0 {
			return 1
		}
		f := float64(req) / float64(alloc)
		return math.Min(f, 1)
	}
	c := frac(ni.NonZeroRequested.MilliCPU+pod.MilliCPU, ni.Allocatable.MilliCPU)
	m := frac(ni.NonZeroRequested.Memory+pod.Memory, ni.Allocatable.Memory)
	std := math.Abs(c-m) / 2
	return int64((1 - std) * MaxScore)
}

// PreferredNodeAffinityWeight sums the weights of the preferred node
// affinity terms node matches.
func PreferredNodeAffinityWeight(pod *corev1.Pod, node *corev1.Node) int64 {
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil {
		return 0
	}
	var sum int64
	for _, t := range a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
		if t.Weight != 0 && matchesTerm(node, &t.Preference) {
			sum += int64(t.Weight)
		}
	}
	return sum
}

// normalize scales raw to 0..MaxScore by the maximum; reverse makes the
// smallest raw value score highest (used for spreading).
func normalize(raw []int64, reverse bool) {
	var maxv int64
	for _, v := range raw {
		if v > maxv {
			maxv = v
		}
	}
	for i, v := range raw {
		switch {
		case maxv == 0 && reverse:
			raw[i] = MaxScore
		case maxv == 0:
			raw[i] = 0
		case reverse:
			raw[i] = MaxScore - v*MaxScore/maxv
		default:
			raw[i] = v * MaxScore / maxv
		}
	}
}

// Score ranks the feasible nodes for pod; higher is better. It adds least
// allocated, balanced allocation, spreading of pods with the same
// controller owner (normalized, reversed) and preferred node affinity
// (normalized).
func Score(pod *corev1.Pod, st *CycleState, nodes []*NodeInfo) []int64 {
	req := NonZeroRequests(st.requests(pod))
	owner := ControllerUID(pod)
	total := make([]int64, len(nodes))
	spread := make([]int64, len(nodes))
	pref := make([]int64, len(nodes))
	for i, ni := range nodes {
		total[i] = LeastAllocatedScore(req, ni) + BalancedAllocationScore(req, ni)
		if owner != "" {
			spread[i] = int64(ni.OwnerCount[owner])
		}
		pref[i] = PreferredNodeAffinityWeight(pod, ni.Node)
	}
	normalize(spread, true)
	normalize(pref, false)
	for i := range total {
		// Spreading weighs double, like upstream's PodTopologySpread weight 2.
		total[i] += 2*spread[i] + pref[i]
	}
	return total
}

// SelectHost returns the index of the best score. Ties go to the first
// best index at or after start (wrapping), so callers can rotate start to
// spread equal nodes.
func SelectHost(scores []int64, start int) int {
	best := -1
	n := len(scores)
	for k := 0; k < n; k++ {
		i := (start + k) % n
		if best < 0 || scores[i] > scores[best] {
			best = i
		}
	}
	return best
}

// FitErrorMessage formats the FailedScheduling message like upstream's
// FitError: "0/3 nodes are available: 1 node(s) were unschedulable, 2
// Insufficient cpu." with "<count> <reason>" entries sorted as strings.
func FitErrorMessage(numNodes int, reasons map[string]int) string {
	if numNodes == 0 {
		return "no nodes available to schedule pods"
	}
	msg := fmt.Sprintf("0/%d nodes are available:", numNodes)
	parts := make([]string, 0, len(reasons))
	for r, n := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	if len(parts) > 0 {
		msg += " " + strings.Join(parts, ", ") + "."
	}
	return msg
}
