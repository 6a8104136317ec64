// Package registry turns the byte-level etcd storage into a typed, generic
// store for API objects. One Store serves every kind; what differs between
// kinds (validation, defaulting, selectable fields, table columns, the scale
// subresource) lives in a Resource descriptor, one file per kind.
package registry

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Strategy holds the per-kind hooks the generic store calls. Metadata
// handling (uid, generateName, generation, status preservation) is generic
// and not part of it.
type Strategy interface {
	// PrepareForCreate defaults a new object.
	PrepareForCreate(obj runtime.Object)
	// PrepareForUpdate defaults an updated object given the stored one.
	PrepareForUpdate(obj, old runtime.Object)
	// Validate checks a new object.
	Validate(obj runtime.Object) field.ErrorList
	// ValidateUpdate checks an update against the stored object.
	ValidateUpdate(obj, old runtime.Object) field.ErrorList
}

// BaseStrategy defaults nothing and accepts everything; kinds embed it and
// override what they need.
type BaseStrategy struct{}

// PrepareForCreate implements Strategy.
func (BaseStrategy) PrepareForCreate(runtime.Object) {}

// PrepareForUpdate implements Strategy.
func (BaseStrategy) PrepareForUpdate(runtime.Object, runtime.Object) {}

// Validate implements Strategy.
func (BaseStrategy) Validate(runtime.Object) field.ErrorList { return nil }

// ValidateUpdate implements Strategy.
func (BaseStrategy) ValidateUpdate(runtime.Object, runtime.Object) field.ErrorList { return nil }

// ScaleAccess reads and writes the replica count behind a /scale subresource.
type ScaleAccess struct {
	// Replicas returns spec.replicas, status.replicas and the label selector
	// (as a string) of obj.
	Get func(obj runtime.Object) (spec, status int32, selector string)
	// Set sets spec.replicas.
	Set func(obj runtime.Object, replicas int32)
}

// Resource describes one REST resource.
type Resource struct {
	GroupVersion schema.GroupVersion
	Kind         string
	// Name is the plural resource name used in URLs (pods).
	Name       string
	Singular   string
	Namespaced bool
	// DNSLabelNames: names must be DNS labels (namespaces, services)
	// instead of DNS subdomains.
	DNSLabelNames bool
	ShortNames    []string
	Categories    []string
	// Subresources the resource serves besides the object itself.
	Subresources []string
	// HasStatus: the main endpoint ignores status changes and /status
	// changes only status.
	HasStatus bool
	Strategy  Strategy
	// FieldLabels are the field selector labels beyond metadata.name and
	// metadata.namespace; Fields returns their values.
	FieldLabels []string
	Fields      func(obj runtime.Object) fields.Set
	// Columns and Row render the Table view (Row returns one cell per
	// column); columns with Priority > 0 show only with -o wide. Nil means
	// the default NAME, AGE table.
	Columns []metav1.TableColumnDefinition
	Row     func(obj runtime.Object) []any
	Scale   *ScaleAccess
	// HoldsDeletion reports kind-specific finalizers (a namespace's
	// spec.finalizers) that keep a deleted object around, like
	// metadata.finalizers do; StartDeletion marks such an object as being
	// deleted (namespace phase Terminating). Both may be nil.
	HoldsDeletion func(obj runtime.Object) bool
	StartDeletion func(obj runtime.Object)
}

// GroupVersionKind of the resource's objects.
func (r *Resource) GroupVersionKind() schema.GroupVersionKind {
	return r.GroupVersion.WithKind(r.Kind)
}

// GroupVersionResource of the resource.
func (r *Resource) GroupVersionResource() schema.GroupVersionResource {
	return r.GroupVersion.WithResource(r.Name)
}

// HasSubresource reports whether sub is served.
func (r *Resource) HasSubresource(sub string) bool {
	for _, s := range r.Subresources {
		if s == sub {
			return true
		}
	}
	return false
}
