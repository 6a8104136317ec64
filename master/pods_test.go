package master

import (
	"encoding/json"
	"strings"
	"testing"
)

const podJSON = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":%q,"labels":{"app":"db"}},"spec":{"containers":[{"name":"c","image":"testbox"}]}}`

func TestIntegrationAPIPodLifecycle(t *testing.T) {
	// p1 is bound to a node that does not exist, which podgc would collect.
	api := startMaster(t, "", func(c *Config) { c.DisableControllers = []string{"podgc"} })
	base := api.URL
	pods := base + "/api/v1/namespaces/default/pods"
	wantCode(t, "create", api.do(t, "POST", pods, "application/json", []byte(strings.ReplaceAll(podJSON, "%q", `"p1"`))), 201)
	bind := `{"apiVersion":"v1","kind":"Binding","metadata":{"name":"p1"},"target":{"apiVersion":"v1","kind":"Node","name":"n1"}}`
	wantCode(t, "bind", api.do(t, "POST", pods+"/p1/binding", "application/json", []byte(bind)), 201)
	r := api.do(t, "POST", pods+"/p1/binding", "application/json", []byte(bind))
	wantCode(t, "second bind", r, 409)
	r = api.do(t, "GET", pods+"?fieldSelector=spec.nodeName%3Dn1", "", nil)
	if n := len(r.json(t)["items"].([]any)); n != 1 {
		t.Fatalf("spec.nodeName selector after binding: %d pods", n)
	}
	// A pod bound to a node is deleted gracefully: it stays, marked, until
	// the kubelet (here: a grace period 0 delete) finishes it.
	r = api.do(t, "DELETE", pods+"/p1", "", nil)
	wantCode(t, "graceful delete", r, 200)
	md := r.json(t)["metadata"].(map[string]any)
	if md["deletionTimestamp"] == nil || md["deletionGracePeriodSeconds"] != 30.0 {
		t.Fatalf("graceful delete metadata: %v", md)
	}
	wantCode(t, "still there", api.do(t, "GET", pods+"/p1", "", nil), 200)
	wantCode(t, "force delete", api.do(t, "DELETE", pods+"/p1?gracePeriodSeconds=0", "", nil), 200)
	wantCode(t, "gone", api.do(t, "GET", pods+"/p1", "", nil), 404)
	// An unbound pod goes at once.
	wantCode(t, "create p2", api.do(t, "POST", pods, "application/json", []byte(strings.ReplaceAll(podJSON, "%q", `"p2"`))), 201)
	wantCode(t, "delete p2", api.do(t, "DELETE", pods+"/p2", "", nil), 200)
	wantCode(t, "p2 gone", api.do(t, "GET", pods+"/p2", "", nil), 404)
}

func TestIntegrationAPIEvictionHonoursBudget(t *testing.T) {
	// No scheduler: its PodScheduled=False status write would race the
	// read-modify-write of the status below (a 409, not what is tested).
	api := startMaster(t, "", func(c *Config) { c.DisableControllers = []string{"scheduler"} })
	base := api.URL
	pods := base + "/api/v1/namespaces/default/pods"
	for _, n := range []string{"d1", "d2", "d3"} {
		wantCode(t, "create "+n, api.do(t, "POST", pods, "application/json", []byte(strings.ReplaceAll(podJSON, "%q", `"`+n+`"`))), 201)
		r := api.do(t, "GET", pods+"/"+n, "", nil)
		p := r.json(t)
		p["status"] = map[string]any{"phase": "Running", "conditions": []any{map[string]any{"type": "Ready", "status": "True"}}}
		wantCode(t, "status "+n, api.do(t, "PUT", pods+"/"+n+"/status", "application/json", mustJSON(t, p)), 200)
	}
	pdb := `{"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{"name":"db-pdb"},"spec":{"minAvailable":2,"selector":{"matchLabels":{"app":"db"}}}}`
	wantCode(t, "create pdb", api.do(t, "POST", base+"/apis/policy/v1/namespaces/default/poddisruptionbudgets", "application/json", []byte(pdb)), 201)
	eviction := `{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"%s","namespace":"default"}}`
	r := api.do(t, "POST", pods+"/d1/eviction", "application/json", []byte(strings.ReplaceAll(eviction, "%s", "d1")))
	wantCode(t, "first eviction", r, 201)
	wantCode(t, "evicted pod gone", api.do(t, "GET", pods+"/d1", "", nil), 404)
	r = api.do(t, "POST", pods+"/d2/eviction", "application/json", []byte(strings.ReplaceAll(eviction, "%s", "d2")))
	wantCode(t, "second eviction", r, 429)
	if got := r.hdr.Get("Retry-After"); got != "" {
		t.Errorf("PDB 429 carries Retry-After %q: upstream sends none, and client-go would retry before kubectl drain does", got)
	}
	for _, want := range []string{"disruption budget", "db-pdb", "d2", "needs 2 healthy pods and has 2"} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("429 body lacks %q: %s", want, r.body)
		}
	}
	wantCode(t, "pod kept", api.do(t, "GET", pods+"/d2", "", nil), 200)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
