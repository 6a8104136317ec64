package master

import (
	"fmt"
	"strings"
	"testing"
)

func TestIntegrationAPIListSemantics(t *testing.T) {
	base := startMaster(t, "", nil)
	url := base + "/api/v1/namespaces/default/configmaps"
	r := do(t, "POST", url, "application/json", []byte(fmt.Sprintf(cmJSON, "one", "x")))
	wantCode(t, "create", r, 201)
	rv1 := r.json(t)["metadata"].(map[string]any)["resourceVersion"].(string)
	wantCode(t, "create two", do(t, "POST", url, "application/json", []byte(fmt.Sprintf(cmJSON, "two", "x"))), 201)

	// Exact reads the past; NotOlderThan and unset read the present.
	if n := len(do(t, "GET", url+"?resourceVersion="+rv1+"&resourceVersionMatch=Exact", "", nil).json(t)["items"].([]any)); n != 1 {
		t.Errorf("Exact at the first create: %d items, want 1", n)
	}
	if n := len(do(t, "GET", url+"?resourceVersion="+rv1+"&resourceVersionMatch=NotOlderThan", "", nil).json(t)["items"].([]any)); n != 2 {
		t.Errorf("NotOlderThan: %d items, want 2", n)
	}
	wantCode(t, "Exact without RV", do(t, "GET", url+"?resourceVersionMatch=Exact", "", nil), 400)

	// dryRun validates and answers without storing.
	r = do(t, "POST", url+"?dryRun=All", "application/json", []byte(fmt.Sprintf(cmJSON, "dry", "x")))
	wantCode(t, "dry run create", r, 201)
	wantCode(t, "dry run stored nothing", do(t, "GET", url+"/dry", "", nil), 404)

	// deletecollection honours the label selector.
	wantCode(t, "create other", do(t, "POST", url, "application/json", []byte(fmt.Sprintf(cmJSON, "keep", "y"))), 201)
	r = do(t, "DELETE", url+"?labelSelector=app%3Dx", "", nil)
	wantCode(t, "deletecollection", r, 200)
	r = do(t, "GET", url, "", nil)
	items := r.json(t)["items"].([]any)
	if len(items) != 1 || !strings.Contains(string(r.body), `"name":"keep"`) {
		t.Fatalf("after deletecollection app=x: %s", r.body)
	}
}
