package registry

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	coreV1         = schema.GroupVersion{Version: "v1"}
	appsV1         = schema.GroupVersion{Group: "apps", Version: "v1"}
	batchV1        = schema.GroupVersion{Group: "batch", Version: "v1"}
	discoveryV1    = schema.GroupVersion{Group: "discovery.k8s.io", Version: "v1"}
	coordinationV1 = schema.GroupVersion{Group: "coordination.k8s.io", Version: "v1"}
	policyV1       = schema.GroupVersion{Group: "policy", Version: "v1"}
)

// Resources returns the descriptors of every served resource, in discovery
// order. Each call returns fresh values (no shared mutable state).
func Resources() []*Resource {
	all := []*Resource{
		namespaces(), pods(), nodes(), services(),
		endpoints(), configMaps(), secrets(), serviceAccounts(),
		events(),
		replicationControllers(),
		persistentVolumes(), persistentVolumeClaims(),
		deployments(), replicaSets(), daemonSets(), statefulSets(), controllerRevisions(),
		jobs(),
		endpointSlices(), leases(),
		podDisruptionBudgets(),
	}
	for _, r := range all {
		if r.Strategy == nil {
			r.Strategy = BaseStrategy{}
		}
	}
	return all
}

// plain is a resource without status or special behaviour.
func plain(gv schema.GroupVersion, kind, name, singular string, namespaced bool, short, categories []string) *Resource {
	return &Resource{GroupVersion: gv, Kind: kind, Name: name, Singular: singular, Namespaced: namespaced,
		ShortNames: short, Categories: categories}
}

// withStatus is a resource with a /status subresource.
func withStatus(gv schema.GroupVersion, kind, name, singular string, namespaced bool, short, categories []string) *Resource {
	r := plain(gv, kind, name, singular, namespaced, short, categories)
	r.HasStatus = true
	r.Subresources = []string{"status"}
	return r
}
