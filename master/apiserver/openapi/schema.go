// Package openapi builds OpenAPI v3 component schemas from the k8s.io/api
// Go types by reflection, in the shape kube-apiserver publishes them:
// upstream model names (io.k8s.api.core.v1.Pod), descriptions from the
// types' generated SwaggerDoc methods, the x-kubernetes-patch-* extensions
// from the patchStrategy/patchMergeKey struct tags (kubectl apply computes
// strategic merge patches from them), and the custom-marshalled types
// (Quantity, IntOrString, Time, ...) described by their own OpenAPI methods.
package openapi

import (
	"reflect"
	"strings"
)

// RefPrefix is where a document's component schemas live.
const RefPrefix = "#/components/schemas/"

// Schema is one JSON schema object as it is serialized.
type Schema = map[string]any

// Schemas collects named component schemas.
type Schemas map[string]Schema

// Ref returns a reference to the component schema name.
func Ref(name string) Schema { return Schema{"$ref": RefPrefix + name} }

// Add defines the schema of the struct type t and of every type it
// references, returning t's model name.
func (s Schemas) Add(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	name := ModelName(t)
	if _, ok := s[name]; ok {
		return name
	}
	sch := Schema{}
	s[name] = sch // before recursing, so cyclic types terminate
	if scalar, ok := scalarSchema(t); ok {
		for k, v := range scalar {
			sch[k] = v
		}
		return name
	}
	if d := typeDoc(t)[""]; d != "" {
		sch["description"] = d
	}
	sch["type"] = "object"
	props := Schema{}
	s.addFields(t, props)
	if len(props) > 0 {
		sch["properties"] = props
	}
	return name
}

// addFields adds the JSON properties of struct t, flattening embedded
// (inline) structs as encoding/json does.
func (s Schemas) addFields(t reflect.Type, props Schema) {
	doc := typeDoc(t)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				s.addFields(ft, props)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = s.property(f, doc[name])
	}
}

// property is a struct field's schema: references are wrapped in allOf so
// the field's own description and extensions can sit beside them, as
// upstream does.
func (s Schemas) property(f reflect.StructField, desc string) Schema {
	p := s.schemaOf(f.Type)
	if _, ref := p["$ref"]; ref {
		p = Schema{"allOf": []any{p}}
	}
	if desc != "" {
		p["description"] = desc
	}
	if v := f.Tag.Get("patchStrategy"); v != "" {
		p["x-kubernetes-patch-strategy"] = v
	}
	if v := f.Tag.Get("patchMergeKey"); v != "" {
		p["x-kubernetes-patch-merge-key"] = v
	}
	return p
}

// schemaOf is the inline schema of a value of type t.
func (s Schemas) schemaOf(t reflect.Type) Schema {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if _, ok := scalarSchema(t); ok || t.Kind() == reflect.Struct {
		return Ref(s.Add(t))
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return Schema{"type": "string", "format": "byte"}
		}
		return Schema{"type": "array", "items": s.schemaOf(t.Elem())}
	case reflect.Map:
		return Schema{"type": "object", "additionalProperties": s.schemaOf(t.Elem())}
	case reflect.String:
		return Schema{"type": "string"}
	case reflect.Bool:
		return Schema{"type": "boolean"}
	case reflect.Int32, reflect.Uint32, reflect.Int16, reflect.Uint16, reflect.Int8, reflect.Uint8:
		return Schema{"type": "integer", "format": "int32"}
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64:
		return Schema{"type": "integer", "format": "int64"}
	case reflect.Float32:
		return Schema{"type": "number", "format": "float"}
	case reflect.Float64:
		return Schema{"type": "number", "format": "double"}
	}
	return Schema{"type": "object"} // interfaces: any JSON value
}

// The methods k8s.io types use to describe their custom JSON form and
// names to openapi-gen.
type (
	schemaTyper   interface{ OpenAPISchemaType() []string }
	schemaFormat  interface{ OpenAPISchemaFormat() string }
	oneOfTyper    interface{ OpenAPIV3OneOfTypes() []string }
	modelNamer    interface{ OpenAPIModelName() string }
	swaggerDocced interface{ SwaggerDoc() map[string]string }
)

// scalarDocs describe the custom-marshalled types, which have no
// SwaggerDoc (upstream takes these from their Go comments).
var scalarDocs = map[string]string{
	"io.k8s.apimachinery.pkg.api.resource.Quantity":   "Quantity is a fixed-point representation of a number. It provides convenient marshaling/unmarshaling in JSON and YAML, in addition to String() and AsInt64() accessors.\n\nThe serialization format is a signed number with an optional suffix: a binary SI suffix (Ki, Mi, Gi, Ti, Pi, Ei), a decimal SI suffix (n, u, m, \"\", k, M, G, T, P, E) or a decimal exponent (e or E followed by a signed number), e.g. 100m, 1.5Gi, 2e3.",
	"io.k8s.apimachinery.pkg.util.intstr.IntOrString": "IntOrString is a type that can hold an int32 or a string.  When used in JSON or YAML marshalling and unmarshalling, it produces or consumes the inner type.  This allows you to have, for example, a JSON field that can accept a name or number.",
	"io.k8s.apimachinery.pkg.apis.meta.v1.Time":       "Time is a wrapper around time.Time which supports correct marshaling to YAML and JSON.  Wrappers are provided for many of the factory methods that the time package offers.",
	"io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime":  "MicroTime is version of Time with microsecond level precision.",
	"io.k8s.apimachinery.pkg.apis.meta.v1.Duration":   "Duration is a wrapper around time.Duration which supports correct marshaling to YAML and JSON. In particular, it marshals into strings, which can be used as map keys in json.",
}

// scalarSchema is the schema of a type that marshals itself to a JSON
// scalar, from its OpenAPI methods: v3 publishes the oneOf alternatives
// (Quantity: string or number) where the type has them.
func scalarSchema(t reflect.Type) (Schema, bool) {
	v := zero(t)
	typer, ok := v.(schemaTyper)
	if !ok {
		return nil, false
	}
	sch := Schema{}
	if d := scalarDocs[ModelName(t)]; d != "" {
		sch["description"] = d
	}
	if f, ok := v.(schemaFormat); ok && f.OpenAPISchemaFormat() != "" {
		sch["format"] = f.OpenAPISchemaFormat()
	}
	if o, ok := v.(oneOfTyper); ok && len(o.OpenAPIV3OneOfTypes()) > 0 {
		var alts []any
		for _, typ := range o.OpenAPIV3OneOfTypes() {
			alts = append(alts, Schema{"type": typ})
		}
		sch["oneOf"] = alts
		return sch, true
	}
	if types := typer.OpenAPISchemaType(); len(types) == 1 {
		sch["type"] = types[0]
	}
	return sch, true
}

// ModelName is t's upstream OpenAPI model name: the one its generated
// OpenAPIModelName method gives, else derived from the package path as
// openapi-gen does (k8s.io/api/core/v1.Pod -> io.k8s.api.core.v1.Pod).
func ModelName(t reflect.Type) string {
	if n, ok := zero(t).(modelNamer); ok {
		return n.OpenAPIModelName()
	}
	host, rest, _ := strings.Cut(t.PkgPath(), "/")
	labels := strings.Split(host, ".")
	for i, j := 0, len(labels)-1; i < j; i, j = i+1, j-1 {
		labels[i], labels[j] = labels[j], labels[i]
	}
	parts := append(labels, strings.Split(rest, "/")...)
	return strings.ReplaceAll(strings.Join(parts, "."), "-", "_") + "." + t.Name()
}

// typeDoc is t's generated SwaggerDoc: "" describes the type, the other
// keys its JSON fields.
func typeDoc(t reflect.Type) map[string]string {
	if d, ok := zero(t).(swaggerDocced); ok {
		return d.SwaggerDoc()
	}
	return nil
}

// zero returns a value of type t whose method set includes pointer
// receivers when t is not an interface.
func zero(t reflect.Type) any {
	if t.Kind() == reflect.Interface {
		return nil
	}
	return reflect.New(t).Interface()
}
