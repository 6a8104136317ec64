package openapi

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/kube-openapi/pkg/spec3"
)

// prop walks properties by name from a named schema, following allOf and
// $ref as kubectl does, and returns the last property's own schema.
func prop(t *testing.T, s Schemas, from string, path ...string) Schema {
	t.Helper()
	cur := s[from]
	var p Schema
	for _, name := range path {
		props, _ := cur["properties"].(Schema)
		p, _ = props[name].(Schema)
		if p == nil {
			t.Fatalf("%s: no property %q in %v", from, name, cur)
		}
		cur = s.resolve(t, p)
	}
	return p
}

func (s Schemas) resolve(t *testing.T, p Schema) Schema {
	t.Helper()
	for {
		if all, ok := p["allOf"].([]any); ok {
			p = all[0].(Schema)
			continue
		}
		if items, ok := p["items"].(Schema); ok {
			p = items
			continue
		}
		if ref, ok := p["$ref"].(string); ok {
			target := s[strings.TrimPrefix(ref, RefPrefix)]
			if target == nil {
				t.Fatalf("dangling $ref %s", ref)
			}
			return target
		}
		return p
	}
}

func TestPodSchema(t *testing.T) {
	s := Schemas{}
	if name := s.Add(reflect.TypeOf(&corev1.Pod{})); name != "io.k8s.api.core.v1.Pod" {
		t.Fatalf("model name %q", name)
	}
	pod := s["io.k8s.api.core.v1.Pod"]
	if !strings.HasPrefix(pod["description"].(string), "Pod is a collection of containers") {
		t.Errorf("Pod description: %v", pod["description"])
	}
	// TypeMeta is inlined, ObjectMeta referenced.
	for _, f := range []string{"apiVersion", "kind"} {
		if p := prop(t, s, "io.k8s.api.core.v1.Pod", f); p["type"] != "string" || p["description"] == nil {
			t.Errorf("%s: %v", f, p)
		}
	}
	if ref := prop(t, s, "io.k8s.api.core.v1.Pod", "metadata")["allOf"].([]any)[0].(Schema)["$ref"]; ref != RefPrefix+"io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" {
		t.Errorf("metadata ref %v", ref)
	}

	containers := prop(t, s, "io.k8s.api.core.v1.Pod", "spec", "containers")
	if containers["type"] != "array" || containers["items"].(Schema)["$ref"] != RefPrefix+"io.k8s.api.core.v1.Container" {
		t.Errorf("containers: %v", containers)
	}
	if containers["x-kubernetes-patch-strategy"] != "merge" || containers["x-kubernetes-patch-merge-key"] != "name" {
		t.Errorf("containers patch extensions: %v", containers)
	}
	if !strings.Contains(containers["description"].(string), "List of containers belonging to the pod") {
		t.Errorf("containers description: %v", containers["description"])
	}

	// Quantity: string or number, as upstream's v3 documents publish it.
	limits := prop(t, s, "io.k8s.api.core.v1.Pod", "spec", "containers", "resources", "limits")
	if limits["type"] != "object" || limits["additionalProperties"].(Schema)["$ref"] != RefPrefix+"io.k8s.apimachinery.pkg.api.resource.Quantity" {
		t.Errorf("limits: %v", limits)
	}
	q := s["io.k8s.apimachinery.pkg.api.resource.Quantity"]
	if got, _ := json.Marshal(q["oneOf"]); string(got) != `[{"type":"string"},{"type":"number"}]` || q["properties"] != nil {
		t.Errorf("Quantity: %v", q)
	}
	if tm := s["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]; tm["type"] != "string" || tm["format"] != "date-time" {
		t.Errorf("Time: %v", tm)
	}
	if p := prop(t, s, "io.k8s.api.core.v1.Pod", "spec", "containers", "ports", "containerPort"); p["type"] != "integer" || p["format"] != "int32" {
		t.Errorf("containerPort: %v", p)
	}
	// ProbeHandler is embedded inline in Probe.
	if p := prop(t, s, "io.k8s.api.core.v1.Container", "livenessProbe", "httpGet", "port"); p["allOf"] == nil {
		t.Errorf("httpGet.port: %v", p)
	}
	if is := s["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]; is["format"] != "int-or-string" {
		t.Errorf("IntOrString: %v", is)
	}
	// FieldsV1 has no JSON fields of its own: an untyped object.
	if f := s["io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1"]; f["type"] != "object" || f["properties"] != nil {
		t.Errorf("FieldsV1: %v", f)
	}
}

func TestSecretDataIsBytes(t *testing.T) {
	s := Schemas{}
	s.Add(reflect.TypeOf(corev1.Secret{}))
	data := prop(t, s, "io.k8s.api.core.v1.Secret", "data")
	if v := data["additionalProperties"].(Schema); v["type"] != "string" || v["format"] != "byte" {
		t.Errorf("Secret.data: %v", data)
	}
}

func TestDocument(t *testing.T) {
	typeOf := func(gvk schema.GroupVersionKind) reflect.Type {
		obj, err := scheme.Scheme.New(gvk)
		if err != nil {
			return nil
		}
		return reflect.TypeOf(obj)
	}
	gv := appsv1.SchemeGroupVersion
	doc := Document("Kubernetes", "v1.32.0", gv, []Resource{
		{Kind: gv.WithKind("Deployment"), Name: "deployments", Namespaced: true, Subresources: []string{"status", "scale"}},
		{Kind: corev1.SchemeGroupVersion.WithKind("Pod"), Name: "pods", Namespaced: true}, // other group: left out
	}, typeOf)
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	// kubectl parses the documents with kube-openapi's spec3 types.
	var parsed spec3.OpenAPI
	if err := json.Unmarshal(data, &parsed); err != nil {
		t.Fatalf("spec3 parse: %v", err)
	}
	dep := parsed.Components.Schemas["io.k8s.api.apps.v1.Deployment"]
	if dep == nil {
		t.Fatal("no Deployment schema")
	}
	var gvks []map[string]string
	if err := dep.Extensions.GetObject("x-kubernetes-group-version-kind", &gvks); err != nil || len(gvks) != 1 || gvks[0]["kind"] != "Deployment" || gvks[0]["group"] != "apps" {
		t.Errorf("Deployment gvk extension: %v %v", gvks, err)
	}
	if parsed.Components.Schemas["io.k8s.api.apps.v1.DeploymentList"] == nil || parsed.Components.Schemas["io.k8s.api.autoscaling.v1.Scale"] == nil {
		t.Error("list or Scale schema missing")
	}
	if _, ok := parsed.Paths.Paths["/api/v1/namespaces/{namespace}/pods"]; ok {
		t.Error("core path in the apps/v1 document")
	}
	item := parsed.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
	if item == nil || item.Patch == nil || item.Patch.RequestBody == nil {
		t.Fatalf("deployment item path: %+v", item)
	}
	if _, ok := item.Patch.RequestBody.Content["application/strategic-merge-patch+json"]; !ok {
		t.Error("patch does not offer strategic merge")
	}
	ok := item.Get.Responses.StatusCodeResponses[200]
	if ok == nil || ok.Content["application/json"].Schema.Ref.String() != RefPrefix+"io.k8s.api.apps.v1.Deployment" {
		t.Errorf("get response: %+v", ok)
	}
	scale := parsed.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
	if scale == nil || scale.Put == nil || scale.Put.Extensions["x-kubernetes-group-version-kind"].(map[string]any)["kind"] != "Scale" {
		t.Errorf("scale path: %+v", scale)
	}
}
