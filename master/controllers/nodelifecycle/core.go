package nodelifecycle

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Tracker remembers, per node, when the controller last saw its Lease or
// status heartbeat change. It uses the controller's clock, never the
// node's, so clock skew between machines cannot keep a dead node alive.
type Tracker struct {
	seen map[string]probe
}

type probe struct {
	stamp string
	at    time.Time
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker { return &Tracker{seen: map[string]probe{}} }

// Observe records the node's current heartbeat stamp (lease renewTime plus
// Ready heartbeat); a new stamp, or a node seen for the first time,
// restarts its grace period at now.
func (t *Tracker) Observe(node, stamp string, now time.Time) {
	if p, ok := t.seen[node]; ok && p.stamp == stamp {
		return
	}
	t.seen[node] = probe{stamp: stamp, at: now}
}

// Forget drops a deleted node.
func (t *Tracker) Forget(node string) { delete(t.seen, node) }

// Stale reports whether the node's heartbeat is older than grace, and if
// not, how long until it would be.
func (t *Tracker) Stale(node string, grace time.Duration, now time.Time) (bool, time.Duration) {
	p, ok := t.seen[node]
	if !ok {
		return false, grace
	}
	left := p.at.Add(grace).Sub(now)
	if left < 0 {
		return true, 0
	}
	return false, left
}

// HeartbeatStamp is the value Observe compares.
func HeartbeatStamp(node *corev1.Node, leaseRenew *metav1.MicroTime) string {
	s := ""
	if leaseRenew != nil {
		s = leaseRenew.UTC().Format(time.RFC3339Nano)
	}
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			s += "|" + c.LastHeartbeatTime.UTC().Format(time.RFC3339Nano)
		}
	}
	return s
}

// unknownConditions are the conditions set to Unknown when a node stops
// reporting, like upstream.
var unknownConditions = []corev1.NodeConditionType{corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure}

// MarkUnknown returns the node's conditions with the kubelet-reported ones
// set to Unknown (reason NodeStatusUnknown), and whether anything changed.
func MarkUnknown(node *corev1.Node, now time.Time) ([]corev1.NodeCondition, bool) {
	conds := append([]corev1.NodeCondition(nil), node.Status.Conditions...)
	changed := false
	t := metav1.NewTime(now)
	for _, typ := range unknownConditions {
		i := -1
		for j := range conds {
			if conds[j].Type == typ {
				i = j
			}
		}
		if i < 0 {
			conds = append(conds, corev1.NodeCondition{Type: typ, Status: corev1.ConditionUnknown, Reason: "NodeStatusNeverUpdated",
				Message: "Kubelet never posted node status.", LastHeartbeatTime: t, LastTransitionTime: t})
			changed = true
			continue
		}
		if conds[i].Status == corev1.ConditionUnknown {
			continue
		}
		conds[i].Status, conds[i].Reason, conds[i].Message = corev1.ConditionUnknown, "NodeStatusUnknown", "Kubelet stopped posting node status."
		conds[i].LastTransitionTime = t
		changed = true
	}
	return conds, changed
}

// readyStatus is the node's Ready condition status (Unknown if missing).
func readyStatus(node *corev1.Node) corev1.ConditionStatus {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

func isLifecycleTaint(t *corev1.Taint) bool {
	return t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable
}

// DesiredTaints returns the node's taints with the not-ready/unreachable
// NoSchedule and NoExecute taints matching its Ready condition: False ->
// not-ready, Unknown -> unreachable, True -> none. Existing matching taints
// keep their timeAdded (eviction deadlines count from it).
func DesiredTaints(node *corev1.Node, now time.Time) ([]corev1.Taint, bool) {
	var key string
	switch readyStatus(node) {
	case corev1.ConditionFalse:
		key = corev1.TaintNodeNotReady
	case corev1.ConditionUnknown:
		key = corev1.TaintNodeUnreachable
	}
	var out []corev1.Taint
	have := map[corev1.TaintEffect]bool{}
	changed := false
	for _, t := range node.Spec.Taints {
		if isLifecycleTaint(&t) && t.Key != key {
			changed = true
			continue
		}
		if t.Key == key {
			have[t.Effect] = true
		}
		out = append(out, t)
	}
	if key != "" {
		for _, eff := range []corev1.TaintEffect{corev1.TaintEffectNoSchedule, corev1.TaintEffectNoExecute} {
			if !have[eff] {
				t := corev1.Taint{Key: key, Effect: eff}
				if eff == corev1.TaintEffectNoExecute {
					at := metav1.NewTime(now)
					t.TimeAdded = &at
				}
				out = append(out, t)
				changed = true
			}
		}
	}
	return out, changed
}

func tolerates(tol *corev1.Toleration, t *corev1.Taint) bool {
	if tol.Effect != "" && tol.Effect != t.Effect {
		return false
	}
	if tol.Key != "" && tol.Key != t.Key {
		return false
	}
	if tol.Operator == corev1.TolerationOpExists {
		return true
	}
	return tol.Value == t.Value
}

// EvictAt is when pod must leave a node with the given NoExecute taints:
// ok=false means never (tolerated forever). Untolerated not-ready and
// unreachable taints count as tolerated for defaultToleration (the
// DefaultTolerationSeconds admission default, 300 s); any other
// untolerated taint evicts at once. With several taints the earliest
// deadline wins.
func EvictAt(pod *corev1.Pod, taints []corev1.Taint, defaultToleration time.Duration) (time.Time, bool) {
	var at time.Time
	found := false
	for i := range taints {
		t := &taints[i]
		if t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		added := time.Time{}
		if t.TimeAdded != nil {
			added = t.TimeAdded.Time
		}
		deadline, evict := added, true
		var matched *corev1.Toleration
		for j := range pod.Spec.Tolerations {
			if tolerates(&pod.Spec.Tolerations[j], t) {
				matched = &pod.Spec.Tolerations[j]
				break
			}
		}
		switch {
		case matched != nil && matched.TolerationSeconds == nil:
			evict = false
		case matched != nil:
			deadline = added.Add(time.Duration(max(*matched.TolerationSeconds, 0)) * time.Second)
		case isLifecycleTaint(t):
			deadline = added.Add(defaultToleration)
		}
		if evict && (!found || deadline.Before(at)) {
			at, found = deadline, true
		}
	}
	return at, found
}
