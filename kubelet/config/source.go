// Package config holds the kubelet's pod sources. Every source emits the same
// kind of events — add, update or remove of one pod, keyed by its UID — so the
// kubelet's sync loop does not care where a pod came from. This session has the
// static-manifest directory; the API server source plugs in behind Source.
package config

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Op says what happened to a pod.
type Op int

const (
	// Add: a pod the kubelet has not seen before.
	Add Op = iota
	// Update: a new spec for a known UID.
	Update
	// Remove: the pod is no longer desired; its containers must go.
	Remove
)

func (o Op) String() string {
	switch o {
	case Add:
		return "add"
	case Update:
		return "update"
	case Remove:
		return "remove"
	}
	return "unknown"
}

// PodUpdate is one change reported by a source.
type PodUpdate struct {
	Op     Op
	Pod    *v1.Pod
	Source string // e.g. "file"; later "api"
}

// UID is a shortcut for the pod's UID.
func (u PodUpdate) UID() types.UID { return u.Pod.UID }

// Source produces pod updates until ctx ends. Run sends on out and returns
// ctx's error (or a setup error) when it stops.
//
// HasSynced turns true once the source has sent everything it knew at start:
// only then may the kubelet treat pods it runs but no source wants as
// orphans (out must be unbuffered for that to hold).
type Source interface {
	Run(ctx context.Context, out chan<- PodUpdate) error
	HasSynced() bool
}

// Annotations the kubelet sets on pods from non-API sources, as upstream does.
const (
	ConfigSourceAnnotation = "kubernetes.io/config.source"
	ConfigHashAnnotation   = "kubernetes.io/config.hash"
	ConfigFileAnnotation   = "hoist.io/config.file"
)
