package master

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hoist-project/hoist/master/storage/storagetest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const cmJSON = `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":%q,"labels":{"app":%q}},"data":{"k":"v"}}`

func TestIntegrationAPIMalformedBodies(t *testing.T) {
	api := startMaster(t, "", nil)
	base := api.URL
	url := base + "/api/v1/namespaces/default/configmaps"
	cases := []struct {
		name, ct, body string
		code           int
		msg            string
	}{
		{"invalid JSON", "application/json", `{"apiVersion":"v1","kind":"ConfigMap",`, 400, "invalid"},
		{"wrong kind", "application/json", `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}`, 400, "expects v1 ConfigMap"},
		{"missing kind", "application/json", `{"metadata":{"name":"x"}}`, 400, "Kind"},
		{"no name", "application/json", `{"apiVersion":"v1","kind":"ConfigMap"}`, 422, "metadata.name: Required value"},
		{"bad name", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}`, 422, "metadata.name: Invalid value"},
		{"empty", "application/json", ``, 400, "empty"},
		{"3 MiB object", "application/json", fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"k":%q}}`, strings.Repeat("x", 3<<20)), 413, "limit"},
	}
	for _, c := range cases {
		r := api.do(t, "POST", url, c.ct, []byte(c.body))
		wantCode(t, c.name, r, c.code)
		if !strings.Contains(string(r.body), c.msg) || r.json(t)["kind"] != "Status" {
			t.Errorf("%s: status body %s does not mention %q", c.name, r.body, c.msg)
		}
	}
	// A 2 MiB object passes the API limit but not etcd's 1.5 MiB request limit.
	big := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"k":%q}}`, strings.Repeat("x", 2<<20))
	wantCode(t, "2 MiB object", api.do(t, "POST", url, "application/json", []byte(big)), 413)
	// Nothing of the rejected writes was stored.
	r := api.do(t, "GET", url, "", nil)
	wantCode(t, "list", r, 200)
	if items := r.json(t)["items"].([]any); len(items) != 0 {
		t.Fatalf("rejected writes left objects behind: %s", r.body)
	}
	// Strict field validation names the unknown field.
	r = api.do(t, "POST", url+"?fieldValidation=Strict", "application/json", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"s"},"bogus":1}`))
	wantCode(t, "strict", r, 400)
	if !strings.Contains(string(r.body), `unknown field \"bogus\"`) {
		t.Errorf("strict error does not name the field: %s", r.body)
	}
	r = api.do(t, "POST", url, "application/json", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"w"},"bogus":1}`))
	wantCode(t, "warn", r, 201)
	if w := r.hdr.Get("Warning"); !strings.Contains(w, "bogus") {
		t.Errorf("default field validation should warn, Warning header %q", w)
	}
	// Pod validation uses upstream's field paths.
	r = api.do(t, "POST", base+"/api/v1/namespaces/default/pods", "application/json", []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}]}}`))
	wantCode(t, "pod without image", r, 422)
	if !strings.Contains(string(r.body), "spec.containers[0].image: Required value") {
		t.Errorf("pod validation message: %s", r.body)
	}
}

func TestIntegrationAPIConflictsAndNamespaces(t *testing.T) {
	api := startMaster(t, "", nil)
	base := api.URL
	url := base + "/api/v1/namespaces/default/configmaps"
	r := api.do(t, "POST", url, "application/json", []byte(fmt.Sprintf(cmJSON, "a", "x")))
	wantCode(t, "create", r, 201)
	obj := r.json(t)
	wantCode(t, "duplicate create", api.do(t, "POST", url, "application/json", []byte(fmt.Sprintf(cmJSON, "a", "x"))), 409)
	md := obj["metadata"].(map[string]any)
	if md["uid"] == "" || md["creationTimestamp"] == nil || md["resourceVersion"] == "" {
		t.Fatalf("server-owned metadata missing: %v", md)
	}
	obj["data"] = map[string]any{"k": "v2"}
	body, _ := json.Marshal(obj)
	wantCode(t, "update", api.do(t, "PUT", url+"/a", "application/json", body), 200)
	r = api.do(t, "PUT", url+"/a", "application/json", body) // same stale resourceVersion
	wantCode(t, "stale update", r, 409)
	if !strings.Contains(string(r.body), "the object has been modified") {
		t.Errorf("conflict message: %s", r.body)
	}
	// generateName
	r = api.do(t, "POST", url, "application/json", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"generateName":"gen-"}}`))
	wantCode(t, "generateName", r, 201)
	if n := r.json(t)["metadata"].(map[string]any)["name"].(string); !strings.HasPrefix(n, "gen-") || len(n) != 9 {
		t.Errorf("generated name %q", n)
	}
	// Namespace lifecycle.
	r = api.do(t, "POST", base+"/api/v1/namespaces/nope/configmaps", "application/json", []byte(fmt.Sprintf(cmJSON, "a", "x")))
	wantCode(t, "create in missing namespace", r, 404)
	wantCode(t, "delete kube-system", api.do(t, "DELETE", base+"/api/v1/namespaces/kube-system", "", nil), 403)
	// A namespace is usable as soon as its create returns (admission falls
	// back to etcd when the watch cache has not seen it yet), and refuses
	// new content once it is terminating.
	wantCode(t, "create namespace", api.do(t, "POST", base+"/api/v1/namespaces", "application/json",
		[]byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"doomed"}}`)), 201)
	doomed := base + "/api/v1/namespaces/doomed/configmaps"
	wantCode(t, "create in a new namespace", api.do(t, "POST", doomed, "application/json",
		[]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"held","finalizers":["hoist.test/hold"]}}`)), 201)
	wantCode(t, "delete namespace", api.do(t, "DELETE", base+"/api/v1/namespaces/doomed", "", nil), 200)
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		r = api.do(t, "POST", doomed, "application/json", []byte(fmt.Sprintf(cmJSON, fmt.Sprintf("late%d", i), "x")))
		if r.code == 403 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("create in a terminating namespace: HTTP %d %s", r.code, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(string(r.body), "unable to create new content in namespace doomed because it is being terminated") {
		t.Errorf("terminating namespace message: %s", r.body)
	}
	// Finalizers hold deletion until removed.
	r = api.do(t, "POST", url, "application/json", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fin","finalizers":["hoist.test/hold"]}}`))
	wantCode(t, "create with finalizer", r, 201)
	r = api.do(t, "DELETE", url+"/fin", "", nil)
	wantCode(t, "delete with finalizer", r, 200)
	r = api.do(t, "GET", url+"/fin", "", nil)
	wantCode(t, "get terminating", r, 200)
	if r.json(t)["metadata"].(map[string]any)["deletionTimestamp"] == nil {
		t.Fatalf("deletionTimestamp not set: %s", r.body)
	}
	wantCode(t, "remove finalizer", api.do(t, "PATCH", url+"/fin", "application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`)), 200)
	wantCode(t, "gone after finalizer removal", api.do(t, "GET", url+"/fin", "", nil), 404)
	// Server-side apply is refused clearly.
	r = api.do(t, "PATCH", url+"/a", "application/apply-patch+yaml", []byte(`{}`))
	wantCode(t, "server-side apply", r, 415)
	if !strings.Contains(string(r.body), "server-side apply is not supported") {
		t.Errorf("apply message: %s", r.body)
	}
}

func TestIntegrationAPIServiceAllocation(t *testing.T) {
	etcd := storagetest.Embedded(t)
	// Two masters share one etcd: allocations must never collide.
	a := startMaster(t, etcd, nil)
	b := startMaster(t, etcd, nil)
	svc := `{"apiVersion":"v1","kind":"Service","metadata":{"name":%q},"spec":{"type":"NodePort","ports":[{"port":80}]}}`
	ips, ports := map[string]bool{}, map[float64]bool{}
	for i := range 10 {
		api := a
		if i%2 == 1 {
			api = b
		}
		r := api.do(t, "POST", api.URL+"/api/v1/namespaces/default/services", "application/json", []byte(fmt.Sprintf(svc, fmt.Sprintf("s%d", i))))
		wantCode(t, "create service", r, 201)
		spec := r.json(t)["spec"].(map[string]any)
		ip, port := spec["clusterIP"].(string), spec["ports"].([]any)[0].(map[string]any)["nodePort"].(float64)
		if ips[ip] || ports[port] || !strings.HasPrefix(ip, "10.") || port < 30000 || port > 32767 {
			t.Fatalf("service %d got clusterIP %s nodePort %v (duplicate or out of range)", i, ip, port)
		}
		ips[ip], ports[port] = true, true
	}
	// A taken ClusterIP is refused; a released one can be reused.
	r := a.do(t, "GET", a.URL+"/api/v1/namespaces/default/services/s0", "", nil)
	ip := r.json(t)["spec"].(map[string]any)["clusterIP"].(string)
	dup := fmt.Sprintf(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"dup"},"spec":{"clusterIP":%q,"ports":[{"port":80}]}}`, ip)
	r = b.do(t, "POST", b.URL+"/api/v1/namespaces/default/services", "application/json", []byte(dup))
	wantCode(t, "duplicate clusterIP", r, 422)
	if !strings.Contains(string(r.body), "spec.clusterIP") {
		t.Errorf("message: %s", r.body)
	}
	wantCode(t, "delete s0", a.do(t, "DELETE", a.URL+"/api/v1/namespaces/default/services/s0", "", nil), 200)
	wantCode(t, "reuse released IP", b.do(t, "POST", b.URL+"/api/v1/namespaces/default/services", "application/json", []byte(dup)), 201)
	r = a.do(t, "GET", a.URL+"/api/v1/namespaces/default/services/kubernetes", "", nil)
	wantCode(t, "kubernetes service", r, 200)
	if got := r.json(t)["spec"].(map[string]any)["clusterIP"]; got != "10.96.0.1" {
		t.Errorf("kubernetes service clusterIP %v, want 10.96.0.1", got)
	}
}

func nextEvent(t *testing.T, ch <-chan map[string]any, skipBookmarks bool) map[string]any {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("watch ended")
			}
			if skipBookmarks && ev["type"] == "BOOKMARK" {
				continue
			}
			return ev
		case <-timeout:
			t.Fatal("no watch event within 10s")
		}
	}
}

func TestIntegrationAPIListWatch(t *testing.T) {
	t.Run("embedded-etcd", func(t *testing.T) { testListWatch(t, storagetest.Embedded(t)) })
	t.Run("external-etcd-3.4", func(t *testing.T) { testListWatch(t, storagetest.External(t)) })
}

func testListWatch(t *testing.T, etcd string) {
	api := startMaster(t, etcd, nil)
	base := api.URL
	url := base + "/api/v1/namespaces/default/configmaps"
	for i := range 5 {
		app := "a"
		if i%2 == 1 {
			app = "b"
		}
		wantCode(t, "create", api.do(t, "POST", url, "application/json", []byte(fmt.Sprintf(cmJSON, fmt.Sprintf("c%d", i), app))), 201)
	}
	// Pagination: limit/continue with remainingItemCount, consistent snapshot.
	r := api.do(t, "GET", url+"?limit=2", "", nil)
	m := r.json(t)["metadata"].(map[string]any)
	if m["continue"] == nil || m["remainingItemCount"] != 3.0 {
		t.Fatalf("first page metadata %v", m)
	}
	r = api.do(t, "GET", url+"?limit=10&continue="+m["continue"].(string), "", nil)
	if n := len(r.json(t)["items"].([]any)); n != 3 {
		t.Fatalf("second page has %d items, want 3", n)
	}
	// Selectors.
	r = api.do(t, "GET", url+"?labelSelector=app%3Db", "", nil)
	if n := len(r.json(t)["items"].([]any)); n != 2 {
		t.Fatalf("labelSelector app=b: %d items", n)
	}
	r = api.do(t, "GET", url+"?fieldSelector=metadata.name%3Dc3", "", nil)
	if n := len(r.json(t)["items"].([]any)); n != 1 {
		t.Fatalf("fieldSelector: %d items", n)
	}
	wantCode(t, "unsupported field label", api.do(t, "GET", url+"?fieldSelector=spec.nodeName%3Dx", "", nil), 400)
	listRV := r.json(t)["metadata"].(map[string]any)["resourceVersion"].(string)

	// Watch from the list's RV with a selector: a label change that makes an
	// object stop matching shows as DELETED; bookmarks arrive when asked.
	ev, stop := api.watchLines(t, url+"?watch=1&labelSelector=app%3Db&allowWatchBookmarks=true&resourceVersion="+listRV)
	defer stop()
	wantCode(t, "relabel", api.do(t, "PATCH", url+"/c1", "application/merge-patch+json", []byte(`{"metadata":{"labels":{"app":"z"}}}`)), 200)
	if e := nextEvent(t, ev, true); e["type"] != "DELETED" {
		t.Fatalf("relabel out of selector: got %v", e["type"])
	}
	wantCode(t, "create b", api.do(t, "POST", url, "application/json", []byte(fmt.Sprintf(cmJSON, "c9", "b"))), 201)
	if e := nextEvent(t, ev, true); e["type"] != "ADDED" {
		t.Fatalf("create: got %v", e["type"])
	}
	if e := nextEvent(t, ev, false); e["type"] != "BOOKMARK" {
		t.Fatalf("want a bookmark while idle, got %v", e["type"])
	}

	// A watch from a revision older than the watch cache's window goes to
	// etcd; compacted there, it gets 410 Gone as an ERROR event. A second
	// master started after the compaction has a cache window that begins
	// after revision 2.
	etcdCompact(t, etcd)
	second := startMaster(t, etcd, nil)
	old, stop2 := second.watchLines(t, second.URL+"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=2")
	defer stop2()
	e := nextEvent(t, old, true)
	obj, _ := e["object"].(map[string]any)
	if e["type"] != "ERROR" || obj["code"] != 410.0 {
		t.Fatalf("watch from compacted revision: got %v", e)
	}
	// timeoutSeconds ends a watch.
	short, _ := api.watchLines(t, url+"?watch=1&timeoutSeconds=1")
	deadline := time.After(10 * time.Second)
	for done := false; !done; {
		select {
		case _, ok := <-short:
			done = !ok
		case <-deadline:
			t.Fatal("watch with timeoutSeconds=1 still open after 10s")
		}
	}
}

// etcdCompact compacts etcd at its current revision.
func etcdCompact(t *testing.T, endpoint string) {
	t.Helper()
	c := storagetest.Client(t, endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, "/registry/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
}
