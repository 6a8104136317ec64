package openapi

import (
	"reflect"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Resource is one served resource of a group/version.
type Resource struct {
	Kind         schema.GroupVersionKind
	Name         string // plural, as in URLs
	Namespaced   bool
	Subresources []string
}

// TypeOf returns the Go type registered for a kind, or nil.
type TypeOf func(schema.GroupVersionKind) reflect.Type

// The kinds of the subresources that do not take the resource's own kind.
var (
	scaleKind    = schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}
	bindingKind  = schema.GroupVersionKind{Version: "v1", Kind: "Binding"}
	evictionKind = schema.GroupVersionKind{Group: "policy", Version: "v1", Kind: "Eviction"}
	tokenKind    = schema.GroupVersionKind{Group: "authentication.k8s.io", Version: "v1", Kind: "TokenRequest"}
)

// The patch types the server accepts (server-side apply is refused, so
// application/apply-patch+yaml is not listed). kubectl apply computes its
// patch from the schemas only when strategic merge is listed here.
var patchTypes = []string{"application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json"}

// Document builds the OpenAPI v3 document of one group/version: a path per
// collection, object and subresource, each operation carrying its kind in
// x-kubernetes-group-version-kind and the query parameters the server
// honours, and the component schemas of every kind and list kind (tagged
// with their group/version/kind) and of everything they reference.
func Document(title, version string, gv schema.GroupVersion, resources []Resource, typeOf TypeOf) Schema {
	d := &docBuilder{schemas: Schemas{}, typeOf: typeOf}
	paths := Schema{}
	for _, r := range resources {
		if r.Kind.GroupVersion() != gv {
			continue
		}
		kind := d.kind(r.Kind)
		list := d.kind(r.Kind.GroupVersion().WithKind(r.Kind.Kind + "List"))
		base := "/" + GroupVersionPath(gv) + "/"
		if r.Namespaced {
			base += "namespaces/{namespace}/"
		}
		base += r.Name
		paths[base] = Schema{
			"get":  d.op("list", r.Kind, list, nil, nil),
			"post": d.op("post", r.Kind, kind, kind, writeParams),
		}
		paths[base+"/{name}"] = d.objectOps(r.Kind, kind)
		for _, sub := range r.Subresources {
			var ops Schema
			switch sub {
			case "scale":
				ops = d.objectOps(scaleKind, d.kind(scaleKind))
			case "binding":
				ops = Schema{"post": d.op("post", bindingKind, d.kind(bindingKind), d.kind(bindingKind), writeParams)}
			case "eviction":
				ops = Schema{"post": d.op("post", evictionKind, d.kind(evictionKind), d.kind(evictionKind), writeParams)}
			case "token":
				ops = Schema{"post": d.op("post", tokenKind, d.kind(tokenKind), d.kind(tokenKind), writeParams)}
			case "finalize":
				ops = Schema{"put": d.op("put", r.Kind, kind, kind, writeParams)}
			default:
				ops = d.objectOps(r.Kind, kind)
			}
			paths[base+"/{name}/"+sub] = ops
		}
	}
	return Schema{
		"openapi":    "3.0.0",
		"info":       Schema{"title": title, "version": version},
		"paths":      paths,
		"components": Schema{"schemas": d.schemas},
	}
}

// GroupVersionPath is a group/version's URL path (api/v1, apis/apps/v1),
// which also names its document.
func GroupVersionPath(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "api/" + gv.Version
	}
	return "apis/" + gv.Group + "/" + gv.Version
}

type docBuilder struct {
	schemas Schemas
	typeOf  TypeOf
}

// kind adds the schema of a kind, tagged with its group/version/kind,
// and returns a reference to it (nil when the kind has no Go type).
func (d *docBuilder) kind(gvk schema.GroupVersionKind) Schema {
	t := d.typeOf(gvk)
	if t == nil {
		return nil
	}
	name := d.schemas.Add(t)
	d.schemas[name]["x-kubernetes-group-version-kind"] = []any{
		Schema{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind},
	}
	return Ref(name)
}

func (d *docBuilder) objectOps(gvk schema.GroupVersionKind, kind Schema) Schema {
	return Schema{
		"get":    d.op("get", gvk, kind, nil, nil),
		"put":    d.op("put", gvk, kind, kind, writeParams),
		"patch":  d.op("patch", gvk, kind, patchBody, append(writeParams[:len(writeParams):len(writeParams)], queryParam("force"))),
		"delete": d.op("delete", gvk, nil, nil, nil),
	}
}

// patchBody marks the patch operations' request bodies (upstream's
// io.k8s.apimachinery.pkg.apis.meta.v1.Patch is an untyped object).
var patchBody = Schema{"type": "object"}

var writeParams = []any{queryParam("dryRun"), queryParam("fieldManager"), queryParam("fieldValidation")}

func queryParam(name string) Schema {
	return Schema{"name": name, "in": "query", "schema": Schema{"type": "string", "uniqueItems": true}}
}

// op is one operation; response and body are schemas (nil: none).
func (d *docBuilder) op(action string, gvk schema.GroupVersionKind, response, body Schema, params []any) Schema {
	ok := Schema{"description": "OK"}
	if response != nil {
		ok["content"] = Schema{"application/json": Schema{"schema": response}, "application/yaml": Schema{"schema": response}}
	}
	o := Schema{
		"operationId":                     action + gvk.Kind,
		"x-kubernetes-action":             action,
		"x-kubernetes-group-version-kind": Schema{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind},
		"responses":                       Schema{"200": ok, "401": Schema{"description": "Unauthorized"}},
	}
	if params != nil {
		o["parameters"] = params
	}
	if body != nil {
		content := Schema{}
		types := []string{"application/json", "application/yaml"}
		if action == "patch" {
			types = patchTypes
		}
		for _, ct := range types {
			content[ct] = Schema{"schema": body}
		}
		o["requestBody"] = Schema{"content": content, "required": true}
	}
	return o
}
