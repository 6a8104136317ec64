package registry

import (
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
)

// Column definitions shared by many kinds.
var (
	colName = metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: "Name must be unique within a namespace."}
	colAge  = metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: "CreationTimestamp is a timestamp representing the server time when this object was created."}
)

func col(name, typ string) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: name, Type: typ}
}

func wide(name, typ string) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: name, Type: typ, Priority: 1}
}

// age renders a creation timestamp the way kubectl shows AGE.
func age(obj runtime.Object) string {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return "<unknown>"
	}
	return since(acc.GetCreationTimestamp())
}

func since(t metav1.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(time.Since(t.Time))
}

func name(obj runtime.Object) string {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return ""
	}
	return acc.GetName()
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func joinOrNone(items []string) string { return orNone(strings.Join(items, ",")) }

// TableFor renders objs as a metav1.Table. Each row carries the object's
// metadata (includeObject=Metadata) or the whole object (Object), as
// upstream does for kubectl.
func (r *Resource) TableFor(objs []runtime.Object, includeObject string, noHeaders bool) *metav1.Table {
	t := &metav1.Table{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "Table"}}
	cols, row := r.Columns, r.Row
	if cols == nil {
		cols = []metav1.TableColumnDefinition{colName, colAge}
		row = func(o runtime.Object) []any { return []any{name(o), age(o)} }
	}
	if !noHeaders {
		t.ColumnDefinitions = cols
	}
	t.Rows = make([]metav1.TableRow, 0, len(objs))
	for _, o := range objs {
		tr := metav1.TableRow{Cells: row(o)}
		switch includeObject {
		case "None":
		case "Object":
			tr.Object = runtime.RawExtension{Object: o}
		default:
			if om := objectMeta(o); om != nil {
				pm := &metav1.PartialObjectMetadata{ObjectMeta: *om.DeepCopy()}
				pm.SetGroupVersionKind(metav1.SchemeGroupVersion.WithKind("PartialObjectMetadata"))
				tr.Object = runtime.RawExtension{Object: pm}
			}
		}
		t.Rows = append(t.Rows, tr)
	}
	return t
}

// objectMeta returns the ObjectMeta embedded in a typed object.
func objectMeta(o any) *metav1.ObjectMeta {
	if a, ok := o.(metav1.ObjectMetaAccessor); ok {
		if om, ok := a.GetObjectMeta().(*metav1.ObjectMeta); ok {
			return om
		}
	}
	if om, ok := o.(*metav1.ObjectMeta); ok {
		return om
	}
	return nil
}
