package framework

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// MatchesNodeSelectorTerms reports whether node matches any of terms (terms
// are ORed, expressions within a term ANDed). A term with no expressions
// matches nothing, like upstream.
func MatchesNodeSelectorTerms(node *corev1.Node, terms []corev1.NodeSelectorTerm) bool {
	for i := range terms {
		if matchesTerm(node, &terms[i]) {
			return true
		}
	}
	return false
}

func matchesTerm(node *corev1.Node, t *corev1.NodeSelectorTerm) bool {
	if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
		return false
	}
	for _, r := range t.MatchExpressions {
		v, ok := node.Labels[r.Key]
		if !matchRequirement(r.Operator, v, ok, r.Values) {
			return false
		}
	}
	for _, r := range t.MatchFields {
		if r.Key != "metadata.name" {
			return false
		}
		if !matchRequirement(r.Operator, node.Name, true, r.Values) {
			return false
		}
	}
	return true
}

func matchRequirement(op corev1.NodeSelectorOperator, v string, present bool, values []string) bool {
	switch op {
	case corev1.NodeSelectorOpIn:
		return present && contains(values, v)
	case corev1.NodeSelectorOpNotIn:
		return !present || !contains(values, v)
	case corev1.NodeSelectorOpExists:
		return present
	case corev1.NodeSelectorOpDoesNotExist:
		return !present
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if !present || len(values) != 1 {
			return false
		}
		have, err1 := strconv.ParseInt(v, 10, 64)
		want, err2 := strconv.ParseInt(values[0], 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if op == corev1.NodeSelectorOpGt {
			return have > want
		}
		return have < want
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// MatchesNodeSelectorAndAffinity checks spec.nodeSelector and the required
// node affinity of pod against node.
func MatchesNodeSelectorAndAffinity(pod *corev1.Pod, node *corev1.Node) bool {
	for k, v := range pod.Spec.NodeSelector {
		if lv, ok := node.Labels[k]; !ok || lv != v {
			return false
		}
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return true
	}
	return MatchesNodeSelectorTerms(node, a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms)
}

// Tolerates reports whether toleration t tolerates taint (upstream semantics:
// empty effect matches every effect, empty key with Exists matches every key).
func Tolerates(t *corev1.Toleration, taint *corev1.Taint) bool {
	if t.Effect != "" && t.Effect != taint.Effect {
		return false
	}
	if t.Key != "" && t.Key != taint.Key {
		return false
	}
	switch t.Operator {
	case "", corev1.TolerationOpEqual:
		return t.Value == taint.Value
	case corev1.TolerationOpExists:
		return true
	}
	return false
}

// TolerationsTolerateTaint reports whether any of tols tolerates taint.
func TolerationsTolerateTaint(tols []corev1.Toleration, taint *corev1.Taint) bool {
	for i := range tols {
		if Tolerates(&tols[i], taint) {
			return true
		}
	}
	return false
}
