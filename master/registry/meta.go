package registry

import (
	"fmt"
	"reflect"

	"github.com/google/uuid"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// prepareMetaForCreate fills the server-owned metadata of a new object.
func (s *Store) prepareMetaForCreate(acc metav1.Object, ns string) error {
	if err := checkNamespace(acc, ns, s.Res.Namespaced); err != nil {
		return err
	}
	if acc.GetName() == "" && acc.GetGenerateName() != "" {
		acc.SetName(acc.GetGenerateName() + utilrand.String(5))
	}
	if acc.GetUID() == "" { // the apiserver sets it before admission
		acc.SetUID(types.UID(uuid.NewString()))
	}
	acc.SetCreationTimestamp(metav1.NewTime(s.now()))
	acc.SetResourceVersion("")
	acc.SetDeletionTimestamp(nil)
	acc.SetDeletionGracePeriodSeconds(nil)
	acc.SetGeneration(0)
	acc.SetSelfLink("")
	return nil
}

// checkNamespace makes the object's namespace agree with the URL's.
func checkNamespace(acc metav1.Object, ns string, namespaced bool) error {
	if !namespaced {
		acc.SetNamespace("")
		return nil
	}
	if acc.GetNamespace() == "" {
		acc.SetNamespace(ns)
	}
	if acc.GetNamespace() != ns {
		return apierrors.NewBadRequest(fmt.Sprintf("the namespace of the provided object (%s) does not match the namespace sent on the request (%s)", acc.GetNamespace(), ns))
	}
	return nil
}

// keepImmutableMeta copies the metadata clients may not change on update.
func keepImmutableMeta(acc, old metav1.Object) {
	acc.SetUID(old.GetUID())
	acc.SetCreationTimestamp(old.GetCreationTimestamp())
	acc.SetDeletionTimestamp(old.GetDeletionTimestamp())
	acc.SetDeletionGracePeriodSeconds(old.GetDeletionGracePeriodSeconds())
	acc.SetGeneration(old.GetGeneration())
	acc.SetSelfLink("")
	if acc.GetGenerateName() == "" {
		acc.SetGenerateName(old.GetGenerateName())
	}
}

func (s *Store) validateMeta(acc metav1.Object) field.ErrorList {
	om := objectMeta(acc)
	if om == nil {
		return nil
	}
	nameFn := apivalidation.NameIsDNSSubdomain
	if s.Res.DNSLabelNames {
		nameFn = apivalidation.NameIsDNSLabel
	}
	return apivalidation.ValidateObjectMeta(om, s.Res.Namespaced, nameFn, field.NewPath("metadata"))
}

// Spec and status are reached by reflection on the typed structs so that
// the generic store works for every kind without per-kind glue.

func structField(obj runtime.Object, name string) reflect.Value {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}
	}
	return v.Elem().FieldByName(name)
}

func goName(jsonName string) string {
	return map[string]string{"spec": "Spec", "status": "Status"}[jsonName]
}

func hasField(obj runtime.Object, name string) bool {
	return structField(obj, goName(name)).IsValid()
}

func getField(obj runtime.Object, name string) (reflect.Value, error) {
	f := structField(obj, goName(name))
	if !f.IsValid() {
		return reflect.Value{}, nil
	}
	return f, nil
}

func setField(obj runtime.Object, name string, val reflect.Value) error {
	f := structField(obj, goName(name))
	if !f.IsValid() || !val.IsValid() {
		return nil
	}
	f.Set(val)
	return nil
}

func resetField(obj runtime.Object, name string) error {
	f := structField(obj, goName(name))
	if f.IsValid() {
		f.Set(reflect.Zero(f.Type()))
	}
	return nil
}

func fieldChanged(obj, old runtime.Object, name string) (bool, error) {
	a, b := structField(obj, goName(name)), structField(old, goName(name))
	if !a.IsValid() || !b.IsValid() {
		return false, nil
	}
	return !apiequality.Semantic.DeepEqual(a.Interface(), b.Interface()), nil
}

// copyInto overwrites *dst with *src (same concrete type).
func copyInto(dst, src runtime.Object) {
	reflect.ValueOf(dst).Elem().Set(reflect.ValueOf(src).Elem())
}
