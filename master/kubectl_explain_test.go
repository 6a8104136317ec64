package master

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EKubectlExplain: kubectl explain reads the published OpenAPI v3
// schemas, with upstream's field names, types and descriptions.
func TestE2EKubectlExplain(t *testing.T) {
	k := newKubectl(t, startMaster(t, "", nil))

	out := k.run("explain", "pods")
	wantContains(t, "explain pods", out,
		"KIND:       Pod", "VERSION:    v1",
		"Pod is a collection of containers that can run on a host.",
		"apiVersion\t<string>", "metadata\t<ObjectMeta>", "spec\t<PodSpec>", "status\t<PodStatus>",
		"Specification of the desired behavior of the pod.")

	out = k.run("explain", "pods.spec.containers.resources")
	wantContains(t, "explain resources", out,
		"FIELD: resources <ResourceRequirements>",
		"Compute Resources required by this container.",
		"ResourceRequirements describes the compute resource requirements.",
		"limits\t<map[string]Quantity>", "requests\t<map[string]Quantity>",
		"Limits describes the maximum amount of compute resources allowed.")

	out = k.run("explain", "deployment.spec.strategy.rollingUpdate", "--recursive")
	wantContains(t, "explain rollingUpdate", out,
		"GROUP:      apps", "KIND:       Deployment",
		"FIELD: rollingUpdate <RollingUpdateDeployment>",
		"Spec to control the desired behavior of rolling update.",
		"maxSurge\t<IntOrString>", "maxUnavailable\t<IntOrString>")

	// The whole tree: nested references resolve, times print as strings.
	out = k.run("explain", "pods", "--recursive")
	wantContains(t, "explain pods --recursive", out,
		"    creationTimestamp\t<string>", "        containerPort\t<integer>", "      nodeSelector\t<map[string]string>")

	out = k.run("explain", "services.spec.ports.port")
	wantContains(t, "explain port", out, "FIELD: port <integer>", "The port that will be exposed by this service.")

	if out, err := k.try("explain", "pods.spec.nosuchfield"); err == nil || !strings.Contains(out, `field "nosuchfield" does not exist`) {
		t.Fatalf("explain of a missing field: %v %s", err, out)
	}
}

// TestE2EOpenAPIDocumentCaching: the index names each document by its
// hash; the document carries that hash as ETag and answers a matching
// If-None-Match with 304; a stale hash redirects to the current one.
func TestE2EOpenAPIDocumentCaching(t *testing.T) {
	m := startMaster(t, "", nil)
	index := m.get(t, m.URL+"/openapi/v3", "").json(t)["paths"].(map[string]any)
	core, ok := index["api/v1"].(map[string]any)
	if !ok {
		t.Fatalf("index lacks api/v1: %v", index)
	}
	url := m.URL + core["serverRelativeURL"].(string)
	_, hash, _ := strings.Cut(url, "?hash=")
	r := m.get(t, url, "")
	wantCode(t, "core document", r, http.StatusOK)
	if got := r.hdr.Get("ETag"); got != `"`+hash+`"` || r.hdr.Get("Cache-Control") != "public, immutable" {
		t.Fatalf("ETag %q Cache-Control %q, want the index's hash %q", got, r.hdr.Get("Cache-Control"), hash)
	}
	schemas := r.json(t)["components"].(map[string]any)["schemas"].(map[string]any)
	if _, ok := schemas["io.k8s.api.core.v1.Pod"]; !ok {
		t.Fatal("core document lacks io.k8s.api.core.v1.Pod")
	}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("If-None-Match", `"`+hash+`"`)
	wantCode(t, "revalidation", send(t, m.client, req), http.StatusNotModified)

	// A stale hash is 301 to the current URL (upstream's handler3), and a
	// client following it gets the immutable document.
	noFollow := *m.client
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	stale := m.URL + "/openapi/v3/api/v1?hash=" + strings.Repeat("A", len(hash))
	req, err = http.NewRequest(http.MethodGet, stale, nil)
	if err != nil {
		t.Fatal(err)
	}
	r = send(t, &noFollow, req)
	wantCode(t, "stale hash", r, http.StatusMovedPermanently)
	if loc := r.hdr.Get("Location"); loc != core["serverRelativeURL"] {
		t.Fatalf("stale hash redirects to %q, want %q", loc, core["serverRelativeURL"])
	}
	r = m.get(t, stale, "")
	wantCode(t, "stale hash followed", r, http.StatusOK)
	if r.hdr.Get("Cache-Control") != "public, immutable" || r.hdr.Get("ETag") != `"`+hash+`"` {
		t.Fatalf("after the redirect: Cache-Control %q ETag %q", r.hdr.Get("Cache-Control"), r.hdr.Get("ETag"))
	}
	// Without a hash the document is served for revalidation, not kept.
	r = m.get(t, m.URL+"/openapi/v3/api/v1", "")
	wantCode(t, "no hash", r, http.StatusOK)
	if r.hdr.Get("Cache-Control") != "no-cache, private" || r.hdr.Get("ETag") != `"`+hash+`"` {
		t.Fatalf("no hash: Cache-Control %q ETag %q", r.hdr.Get("Cache-Control"), r.hdr.Get("ETag"))
	}
	wantCode(t, "openapi v2", m.get(t, m.URL+"/openapi/v2", ""), http.StatusNotFound)
}

// TestE2EKubectlPatchPreconditions: a patch carrying a stale
// metadata.resourceVersion is refused with upstream's conflict, the
// current one applies; a uid cannot be patched or replaced.
func TestE2EKubectlPatchPreconditions(t *testing.T) {
	k := newKubectl(t, startMaster(t, "", nil))
	k.run("create", "configmap", "guarded", "--from-literal=a=1")
	for _, typ := range []string{"merge", "strategic"} {
		out, err := k.try("patch", "configmap", "guarded", "--type", typ, "-p", `{"metadata":{"resourceVersion":"1"},"data":{"a":"2"}}`)
		if err == nil {
			t.Fatalf("%s patch with a stale resourceVersion applied: %s", typ, out)
		}
		wantContains(t, typ+" stale patch", out, `Error from server (Conflict): Operation cannot be fulfilled on configmaps "guarded": the object has been modified; please apply your changes to the latest version and try again`)
	}
	out, err := k.try("patch", "configmap", "guarded", "--type", "json", "-p", `[{"op":"replace","path":"/metadata/resourceVersion","value":"1"}]`)
	if err == nil || !strings.Contains(out, "(Conflict)") {
		t.Fatalf("json patch with a stale resourceVersion: %v %s", err, out)
	}
	if got := k.run("get", "configmap", "guarded", "-o", "jsonpath={.data.a}"); got != "1" {
		t.Fatalf("refused patches changed the data: a=%s", got)
	}

	rv := k.run("get", "configmap", "guarded", "-o", "jsonpath={.metadata.resourceVersion}")
	k.run("patch", "configmap", "guarded", "--type", "merge", "-p", `{"metadata":{"resourceVersion":"`+rv+`"},"data":{"a":"3"}}`)
	if got := k.run("get", "configmap", "guarded", "-o", "jsonpath={.data.a}"); got != "3" {
		t.Fatalf("patch at the current resourceVersion: a=%s", got)
	}

	out, err = k.try("patch", "configmap", "guarded", "--type", "merge", "-p", `{"metadata":{"uid":"0000-not-the-uid"}}`)
	if err == nil {
		t.Fatalf("patch changing the uid applied: %s", out)
	}
	wantContains(t, "uid patch", out, `The ConfigMap "guarded" is invalid: metadata.uid: Invalid value: "0000-not-the-uid": field is immutable`)

	// A replace (PUT) whose body names another object's uid: 409.
	cur := k.run("get", "configmap", "guarded", "-o", "json")
	uid := k.run("get", "configmap", "guarded", "-o", "jsonpath={.metadata.uid}")
	file := filepath.Join(t.TempDir(), "other.json")
	if err := os.WriteFile(file, []byte(strings.Replace(cur, uid, "0000-not-the-uid", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = k.try("replace", "-f", file)
	if err == nil {
		t.Fatalf("replace with another uid applied: %s", out)
	}
	wantContains(t, "uid replace", out, `(Conflict)`, `precondition failed: UID in precondition: 0000-not-the-uid, UID in object meta: `+uid)
}

// TestE2EKubectlApplyWithSchemas: with schemas published kubectl apply
// computes its strategic merge patch from them (they carry the patch
// strategies and merge keys), and lists merge by key as upstream.
func TestE2EKubectlApplyWithSchemas(t *testing.T) {
	k := newKubectl(t, startMaster(t, "", nil))
	file := filepath.Join(t.TempDir(), "web.yaml")
	manifest := func(containers string) {
		t.Helper()
		doc := `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: "25%"}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
` + containers
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	manifest(`      - {name: a, image: "a:1", env: [{name: FOO, value: "1"}, {name: BAR, value: "2"}]}
      - {name: b, image: "b:1"}
`)
	k.run("apply", "-f", file)
	// Another writer adds an env var to container a: apply keeps it, since
	// env merges by name (a replaced list would drop it).
	k.run("patch", "deployment", "web", "--type", "strategic", "-p",
		`{"spec":{"template":{"spec":{"containers":[{"name":"a","env":[{"name":"BAZ","value":"9"}]}]}}}}`)
	manifest(`      - {name: a, image: "a:2", env: [{name: FOO, value: "1"}]}
`)
	out := mustOK(t)(k.tryCombined("apply", "-v=5", "-f", file))
	if strings.Contains(out, "OpenAPI V3 path does not") || strings.Contains(out, "error calculating patch") {
		t.Fatalf("apply did not use the OpenAPI v3 schemas:\n%s", out)
	}
	got := k.run("get", "deployment", "web", "-o",
		`jsonpath={range .spec.template.spec.containers[*]}{.name}={.image}:{range .env[*]}{.name},{end};{end}`)
	// The library orders the kept element by its own rules: either order.
	if got != "a=a:2:FOO,BAZ,;" && got != "a=a:2:BAZ,FOO,;" {
		t.Fatalf("containers after apply: %q, want a=a:2 with env FOO and BAZ, b removed", got)
	}
}
