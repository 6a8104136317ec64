package deployment

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// scaled resolves an int or percentage against total, rounding percentages
// up or down.
func scaled(v *intstr.IntOrString, def intstr.IntOrString, total int32, roundUp bool) (int32, error) {
	if v == nil {
		v = &def
	}
	if v.Type == intstr.Int {
		if v.IntVal < 0 {
			return 0, fmt.Errorf("invalid value %d: must not be negative", v.IntVal)
		}
		return v.IntVal, nil
	}
	s := v.StrVal
	if !strings.HasSuffix(s, "%") {
		return 0, fmt.Errorf("invalid value %q: must be an integer or a percentage", s)
	}
	pct, err := strconv.Atoi(strings.TrimSuffix(s, "%"))
	if err != nil || pct < 0 {
		return 0, fmt.Errorf("invalid value %q: must be an integer or a percentage", s)
	}
	f := float64(pct) * float64(total) / 100
	if roundUp {
		return int32(math.Ceil(f)), nil
	}
	return int32(math.Floor(f)), nil
}

func isZero(v *intstr.IntOrString) bool {
	return v != nil && ((v.Type == intstr.Int && v.IntVal == 0) || (v.Type == intstr.String && (v.StrVal == "0%" || v.StrVal == "0")))
}

// ResolveFenceposts turns maxSurge/maxUnavailable (default 25% each) into
// pod counts for desired replicas, like upstream: surge rounds up,
// unavailable rounds down, and if both come out zero unavailable becomes 1
// so a rollout can make progress. Both set to zero explicitly is an error
// (the API rejects it; a deployment that slipped through must not hang).
func ResolveFenceposts(ru *appsv1.RollingUpdateDeployment, desired int32) (surge, unavailable int32, err error) {
	def := intstr.FromString("25%")
	var ms, mu *intstr.IntOrString
	if ru != nil {
		ms, mu = ru.MaxSurge, ru.MaxUnavailable
	}
	if isZero(ms) && isZero(mu) {
		return 0, 0, fmt.Errorf("maxSurge and maxUnavailable are both 0: the rollout could never make progress; set one of them above 0")
	}
	if surge, err = scaled(ms, def, desired, true); err != nil {
		return 0, 0, fmt.Errorf("maxSurge: %w", err)
	}
	if unavailable, err = scaled(mu, def, desired, false); err != nil {
		return 0, 0, fmt.Errorf("maxUnavailable: %w", err)
	}
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, unavailable, nil
}

// RS is the part of a ReplicaSet the rollout arithmetic looks at.
type RS struct {
	Name      string
	Replicas  int32 // spec.replicas
	Available int32 // status.availableReplicas
}

func total(sets []*RS) (replicas, available int32) {
	for _, s := range sets {
		replicas += s.Replicas
		available += s.Available
	}
	return
}

// NewRSReplicas is the replica count to give the new ReplicaSet in a
// rolling update: up to desired, never more than desired+surge pods in all.
func NewRSReplicas(desired, surge int32, newRS *RS, old []*RS) int32 {
	if newRS.Replicas >= desired {
		return desired
	}
	all, _ := total(append([]*RS{newRS}, old...))
	maxTotal := desired + surge
	if all >= maxTotal {
		return newRS.Replicas
	}
	up := min(maxTotal-all, desired-newRS.Replicas)
	return newRS.Replicas + up
}

// ScaleDownOld returns the new replica counts of the old ReplicaSets
// (oldest first) such that at least desired-unavailable pods stay
// available: unhealthy old pods go first, then available ones.
func ScaleDownOld(desired, unavailable int32, newRS *RS, old []*RS) []int32 {
	out := make([]int32, len(old))
	for i, s := range old {
		out[i] = s.Replicas
	}
	oldTotal, _ := total(old)
	if oldTotal == 0 {
		return out
	}
	all, _ := total(append([]*RS{newRS}, old...))
	minAvailable := desired - unavailable
	newUnavailable := newRS.Replicas - newRS.Available
	budget := all - minAvailable - newUnavailable
	if budget <= 0 {
		return out
	}
	// Unhealthy old pods cost no availability.
	for i, s := range old {
		if budget == 0 {
			break
		}
		unhealthy := s.Replicas - s.Available
		if unhealthy <= 0 {
			continue
		}
		n := min(unhealthy, budget)
		out[i] -= n
		budget -= n
	}
	// Then available pods, while availability stays above the minimum.
	_, available := total(append([]*RS{newRS}, old...))
	canLose := available - minAvailable
	for i, s := range old {
		if canLose <= 0 {
			break
		}
		left := min(out[i], s.Available)
		n := min(left, canLose)
		out[i] -= n
		canLose -= n
	}
	return out
}
