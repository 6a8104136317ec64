package framework

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// CycleState is computed once per pod before filtering all nodes (upstream's
// PreFilter): the pod's requests and the topology domains that required
// pod anti-affinity rules forbid.
type CycleState struct {
	req    Resource
	hasReq bool
	// forbidden maps topologyKey -> values where the pod may not go, because
	// of its own anti-affinity terms or existing pods' terms.
	ownForbidden      map[string]map[string]bool
	existingForbidden map[string]map[string]bool
}

func (st *CycleState) requests(pod *corev1.Pod) Resource {
	if st == nil {
		return PodRequests(pod)
	}
	if !st.hasReq {
		st.req, st.hasReq = PodRequests(pod), true
	}
	return st.req
}

func requiredAntiAffinity(pod *corev1.Pod) []corev1.PodAffinityTerm {
	if pod.Spec.Affinity == nil || pod.Spec.Affinity.PodAntiAffinity == nil {
		return nil
	}
	return pod.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
}

// HasRequiredAntiAffinity reports whether pod carries required
// anti-affinity terms (the cache indexes such pods).
func HasRequiredAntiAffinity(pod *corev1.Pod) bool { return len(requiredAntiAffinity(pod)) > 0 }

// termMatches reports whether target (a pod) is selected by term, declared
// by a pod in namespace ownerNS.
func termMatches(term *corev1.PodAffinityTerm, ownerNS string, target *corev1.Pod) bool {
	nsOK := false
	if len(term.Namespaces) == 0 && term.NamespaceSelector == nil {
		nsOK = target.Namespace == ownerNS
	} else {
		nsOK = contains(term.Namespaces, target.Namespace)
		// A non-nil empty namespaceSelector selects all namespaces; a
		// non-empty one needs namespace labels, which the scheduler does not
		// track, so it only matches through the explicit list.
		if !nsOK && term.NamespaceSelector != nil && len(term.NamespaceSelector.MatchLabels) == 0 && len(term.NamespaceSelector.MatchExpressions) == 0 {
			nsOK = true
		}
	}
	if !nsOK {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
	if err != nil || term.LabelSelector == nil {
		return false
	}
	return sel.Matches(labels.Set(target.Labels))
}

func addDomain(m map[string]map[string]bool, key, value string) map[string]map[string]bool {
	if m == nil {
		m = map[string]map[string]bool{}
	}
	if m[key] == nil {
		m[key] = map[string]bool{}
	}
	m[key][value] = true
	return m
}

// PreFilter computes the CycleState of pod over all nodes. It only walks
// pods when anti-affinity is involved: the pod's own terms, or nodes that
// hold pods with terms (NodeInfo.AntiAffinityPods).
func PreFilter(pod *corev1.Pod, nodes []*NodeInfo) *CycleState {
	st := &CycleState{}
	st.requests(pod)
	own := requiredAntiAffinity(pod)
	for _, ni := range nodes {
		if ni.Node == nil {
			continue
		}
		if len(own) > 0 {
			for _, p := range ni.Pods {
				for i := range own {
					v, ok := ni.Node.Labels[own[i].TopologyKey]
					if ok && termMatches(&own[i], pod.Namespace, p) {
						st.ownForbidden = addDomain(st.ownForbidden, own[i].TopologyKey, v)
					}
				}
			}
		}
		if ni.antiAffinityPods == 0 {
			continue
		}
		for _, p := range ni.Pods {
			terms := requiredAntiAffinity(p)
			for i := range terms {
				v, ok := ni.Node.Labels[terms[i].TopologyKey]
				if ok && termMatches(&terms[i], p.Namespace, pod) {
					st.existingForbidden = addDomain(st.existingForbidden, terms[i].TopologyKey, v)
				}
			}
		}
	}
	return st
}

func inForbidden(m map[string]map[string]bool, node *corev1.Node) bool {
	for key, values := range m {
		if v, ok := node.Labels[key]; ok && values[v] {
			return true
		}
	}
	return false
}

// FilterAntiAffinity rejects nodes in a topology domain forbidden by the
// pod's required anti-affinity or by an existing pod's.
func FilterAntiAffinity(pod *corev1.Pod, ni *NodeInfo, st *CycleState) []string {
	if st == nil {
		return nil
	}
	if inForbidden(st.existingForbidden, ni.Node) {
		return []string{ReasonExistingAntiAff}
	}
	if inForbidden(st.ownForbidden, ni.Node) {
		return []string{ReasonAntiAffinity}
	}
	return nil
}
