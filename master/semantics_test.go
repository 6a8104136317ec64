package master

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hoist-project/hoist/master/controllers/controllermanager"
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

// quietAPI is a master without controllers or scheduler, so the etcd
// reads its metrics count are the test's own (and a pod stays as created).
func quietAPI(t *testing.T) *testMaster {
	return startMaster(t, "", func(c *Config) { c.DisableControllers = append(controllermanager.Names(), schedulerName) })
}

// TestIntegrationAPIGetResourceVersion: GET honours resourceVersion as
// upstream: "0" is answered by the watch cache without an etcd read (a
// missing object too, with the same 404), unset reads etcd, N answers
// with a version not older than N, and a revision etcd has not reached
// is 504 "Too large resource version".
func TestIntegrationAPIGetResourceVersion(t *testing.T) {
	api := quietAPI(t)
	pods := api.URL + "/api/v1/namespaces/default/pods"
	r := api.do(t, "POST", pods, "application/json", []byte(fmt.Sprintf(podJSON, "x")))
	wantCode(t, "create", r, 201)
	rv := r.json(t)["metadata"].(map[string]any)["resourceVersion"].(string)
	wantPod := func(what string, r response) {
		t.Helper()
		wantCode(t, what, r, 200)
		md := r.json(t)["metadata"].(map[string]any)
		if md["name"] != "x" || md["resourceVersion"] != rv {
			t.Fatalf("%s: metadata %v, want x at %s", what, md, rv)
		}
	}
	// Not older than the create: answered at once (by etcd until the
	// cache has it).
	wantPod("rv of the create", api.get(t, pods+"/x?resourceVersion="+rv, ""))
	// The cache may lag the create by a moment.
	waitFor(t, "x in the watch cache", func() bool { return api.get(t, pods+"/x?resourceVersion=0", "").code == 200 })
	wantPod("rv=0", api.get(t, pods+"/x?resourceVersion=0", ""))

	fromCache, fromEtcd := api.get(t, pods+"/nope?resourceVersion=0", ""), api.get(t, pods+"/nope", "")
	wantCode(t, "missing at rv=0", fromCache, 404)
	st := fromCache.json(t)
	if st["message"] != `pods "nope" not found` || st["reason"] != "NotFound" || string(fromCache.body) != string(fromEtcd.body) {
		t.Fatalf("404 at rv=0: %s, without rv: %s", fromCache.body, fromEtcd.body)
	}

	// rv=0 costs no etcd read, a GET without rv one each.
	const n = 100
	gets := func() float64 { return etcdCalls(t, api)["get"] }
	before := gets()
	for range n {
		wantCode(t, "rv=0", api.get(t, pods+"/x?resourceVersion=0", ""), 200)
	}
	mid := gets()
	for range n {
		wantCode(t, "no rv", api.get(t, pods+"/x", ""), 200)
	}
	after := gets()
	t.Logf("etcd reads: %v for %d GETs at rv=0, %v for %d without rv", mid-before, n, after-mid, n)
	if mid-before >= n/2 || after-mid < n {
		t.Fatalf("etcd reads: %v for %d GETs at rv=0 (want ~0), %v for %d without rv (want >= %d)", mid-before, n, after-mid, n, n)
	}

	n0, _ := strconv.ParseInt(rv, 10, 64)
	future := strconv.FormatInt(n0+1000000, 10)
	r = api.get(t, pods+"/x?resourceVersion="+future, "")
	wantCode(t, "rv ahead of etcd", r, 504)
	if msg := r.json(t)["message"].(string); !strings.HasPrefix(msg, "Timeout: Too large resource version: "+future+", current: ") {
		t.Fatalf("rv ahead of etcd: %s", r.body)
	}
	if got := r.hdr.Get("Retry-After"); got != "1" {
		t.Fatalf("rv ahead of etcd: Retry-After %q, want the status's retry hint 1", got)
	}
	wantCode(t, "rv=abc", api.get(t, pods+"/x?resourceVersion=abc", ""), 400)
}

// TestE2EKubectlGetReadsEtcd: kubectl get of one object sends no
// resourceVersion, so it reads etcd (the latest version), not the cache.
func TestE2EKubectlGetReadsEtcd(t *testing.T) {
	api := quietAPI(t)
	k := newKubectl(t, api)
	wantCode(t, "create", api.do(t, "POST", api.URL+"/api/v1/namespaces/default/pods", "application/json", []byte(fmt.Sprintf(podJSON, "x"))), 201)
	k.run("get", "pod", "x") // discovery into the cache dir first
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	before := etcdCalls(t, api)["get"]
	out, err := k.cmd(ctx, "get", "pod", "x", "-v=6").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get pod x: %v\n%s", err, out)
	}
	reads := etcdCalls(t, api)["get"] - before
	var get string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "GET") && strings.Contains(l, "/api/v1/namespaces/default/pods/x") {
			get = l
		}
	}
	if get == "" || strings.Contains(get, "resourceVersion") || !strings.Contains(get, "200 OK") {
		t.Fatalf("kubectl's GET of pod x: %q in\n%s", get, out)
	}
	t.Logf("kubectl: %s (%v etcd reads)", strings.TrimSpace(get), reads)
	if reads < 1 {
		t.Fatalf("kubectl get pod x made %v etcd reads, want at least 1", reads)
	}
}
