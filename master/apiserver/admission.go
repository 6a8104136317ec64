package apiserver

import (
	"context"

	"github.com/hoist-project/hoist/master/registry"
	"k8s.io/apimachinery/pkg/runtime"
)

// Operation is the kind of write being admitted.
type Operation string

// Operations.
const (
	Create Operation = "CREATE"
	Update Operation = "UPDATE"
	Delete Operation = "DELETE"
)

// Attributes of one write.
type Attributes struct {
	Op          Operation
	Resource    *registry.Resource
	Namespace   string
	Name        string
	Subresource string
	Obj, Old    runtime.Object
	DryRun      bool
}

// Admission checks and mutates writes before they are stored, and learns
// about objects that went away so it can release what it allocated.
type Admission interface {
	// Admit may mutate a.Obj; an error (an API status error) rejects the write.
	Admit(ctx context.Context, a Attributes) error
	// Release undoes what Admit allocated for obj: called after a failed
	// create or update, and after a deletion removed obj.
	Release(ctx context.Context, res *registry.Resource, obj, kept runtime.Object)
}

type nopAdmission struct{}

func (nopAdmission) Admit(context.Context, Attributes) error { return nil }

func (nopAdmission) Release(context.Context, *registry.Resource, runtime.Object, runtime.Object) {}
