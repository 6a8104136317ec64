package master

import (
	"strings"
	"testing"
	"time"
)

func TestIntegrationAPIDiscoveryTablesMetrics(t *testing.T) {
	api := startMaster(t, "", nil)
	base := api.URL
	for _, p := range []string{"/healthz", "/livez", "/readyz"} {
		if r := api.get(t, base+p, ""); r.code != 200 || string(r.body) != "ok" {
			t.Errorf("%s: %d %s", p, r.code, r.body)
		}
	}
	if v := api.get(t, base+"/version", "").json(t); v["gitVersion"] != "v1.32.0" || v["minor"] != "32" {
		t.Errorf("version: %v", v)
	}
	core := string(api.get(t, base+"/api/v1", "").body)
	for _, want := range []string{`"name":"pods"`, `"shortNames":["po"]`, `"categories":["all"]`, `"pods/eviction"`, `"deletecollection"`} {
		if !strings.Contains(core, want) {
			t.Errorf("/api/v1 lacks %s", want)
		}
	}
	groups := string(api.get(t, base+"/apis", "").body)
	for _, g := range []string{"apps", "batch", "policy", "discovery.k8s.io", "coordination.k8s.io"} {
		if !strings.Contains(groups, `"name":"`+g+`"`) {
			t.Errorf("/apis lacks group %s", g)
		}
	}
	if r := api.get(t, base+"/apis/apps/v1", ""); !strings.Contains(string(r.body), `"deployments/scale"`) {
		t.Errorf("/apis/apps/v1: %s", r.body)
	}
	oa := api.get(t, base+"/openapi/v3", "").json(t)["paths"].(map[string]any)
	url := oa["apis/apps/v1"].(map[string]any)["serverRelativeURL"].(string)
	if doc := string(api.get(t, base+url, "").body); !strings.Contains(doc, `"fieldValidation"`) || !strings.Contains(doc, `"Deployment"`) {
		t.Errorf("openapi apps/v1 document lacks fieldValidation or Deployment")
	}

	// YAML in, YAML out.
	yamlCM := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yml\ndata:\n  k: v\n"
	wantCode(t, "yaml create", api.do(t, "POST", base+"/api/v1/namespaces/default/configmaps", "application/yaml", []byte(yamlCM)), 201)
	if r := api.get(t, base+"/api/v1/namespaces/default/configmaps/yml", "application/yaml"); !strings.Contains(string(r.body), "name: yml") {
		t.Errorf("yaml get: %s", r.body)
	}
	// Table output with upstream's columns.
	tbl := api.get(t, base+"/api/v1/namespaces/default/services", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json").json(t)
	if tbl["kind"] != "Table" {
		t.Fatalf("as=Table: %v", tbl["kind"])
	}
	var cols []string
	for _, c := range tbl["columnDefinitions"].([]any) {
		cols = append(cols, c.(map[string]any)["name"].(string))
	}
	if strings.Join(cols, ",") != "Name,Type,Cluster-IP,External-IP,Port(s),Age,Selector" {
		t.Errorf("service columns: %v", cols)
	}
	row := tbl["rows"].([]any)[0].(map[string]any)
	if cells := row["cells"].([]any); cells[0] != "kubernetes" || cells[2] != "10.96.0.1" {
		t.Errorf("service row: %v", cells)
	}
	if row["object"].(map[string]any)["kind"] != "PartialObjectMetadata" {
		t.Errorf("row object: %v", row["object"])
	}

	// The watch cache fills asynchronously from etcd's watch stream.
	deadline := time.Now().Add(10 * time.Second)
	for m := ""; !strings.Contains(m, `apiserver_watch_cache_objects{group="",resource="configmaps"} 1`) ||
		!strings.Contains(m, `apiserver_watch_cache_objects{group="",resource="namespaces"} 4`); m = string(api.get(t, base+"/metrics", "").body) {
		if time.Now().After(deadline) {
			t.Fatal("watch caches of configmaps and namespaces never reached 1 and 4 objects")
		}
		time.Sleep(20 * time.Millisecond)
	}
	m := string(api.get(t, base+"/metrics", "").body)
	for _, want := range []string{
		`apiserver_request_total{code="201",group="",resource="configmaps",subresource="",verb="create",version="v1"} 1`,
		`apiserver_request_duration_seconds_bucket`, `etcd_request_duration_seconds_count{operation="create"}`,
		`apiserver_watch_cache_objects{group="",resource="namespaces"} 4`, `apiserver_registered_watchers`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s; watch cache lines:\n%s", want, grepLines(m, "apiserver_watch_cache_objects{"))
		}
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
