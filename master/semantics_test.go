package master

import (
	"fmt"
	"strings"
	"testing"
)

func TestIntegrationAPIListSemantics(t *testing.T) {
	api := startMaster(t, "", nil)
	base := api.URL
	url := base + "/api/v1/namespaces/default/configmaps"
	r := api.do(t, "POST", url, "application/json", []byte(fmt.Sprintf(cmJSON, "one", "x")))
	wantCode(t, "create", r, 201)
	rv1 := r.json(t)["metadata"].(map[string]any)["resourceVersion"].(string)
	r = api.do(t, "POST", url, "application/json", []byte(fmt.Sprintf(cmJSON, "two", "x")))
	wantCode(t, "create two", r, 201)
	rv2 := r.json(t)["metadata"].(map[string]any)["resourceVersion"].(string)

	// Exact reads the past; NotOlderThan reads at least the given revision
	// (asked at rv1, the watch cache may legitimately answer before it has
	// the second create, so ask at rv2).
	if n := len(api.do(t, "GET", url+"?resourceVersion="+rv1+"&resourceVersionMatch=Exact", "", nil).json(t)["items"].([]any)); n != 1 {
		t.Errorf("Exact at the first create: %d items, want 1", n)
	}
	if n := len(api.do(t, "GET", url+"?resourceVersion="+rv2+"&resourceVersionMatch=NotOlderThan", "", nil).json(t)["items"].([]any)); n != 2 {
		t.Errorf("NotOlderThan the second create: %d items, want 2", n)
	}
	wantCode(t, "Exact without RV", api.do(t, "GET", url+"?resourceVersionMatch=Exact", "", nil), 400)

	// dryRun validates and answers without storing.
	r = api.do(t, "POST", url+"?dryRun=All", "application/json", []byte(fmt.Sprintf(cmJSON, "dry", "x")))
	wantCode(t, "dry run create", r, 201)
	wantCode(t, "dry run stored nothing", api.do(t, "GET", url+"/dry", "", nil), 404)

	// deletecollection honours the label selector.
	wantCode(t, "create other", api.do(t, "POST", url, "application/json", []byte(fmt.Sprintf(cmJSON, "keep", "y"))), 201)
	r = api.do(t, "DELETE", url+"?labelSelector=app%3Dx", "", nil)
	wantCode(t, "deletecollection", r, 200)
	r = api.do(t, "GET", url, "", nil)
	items := r.json(t)["items"].([]any)
	if len(items) != 1 || !strings.Contains(string(r.body), `"name":"keep"`) {
		t.Fatalf("after deletecollection app=x: %s", r.body)
	}
}
