package apiserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hoist-project/hoist/master/registry"
	"k8s.io/client-go/kubernetes/scheme"
)

// openAPIServer serves the documents of every resource; the stores are
// never run (the documents need only the resource descriptions).
func openAPIServer(t *testing.T) *Server {
	t.Helper()
	var stores []*registry.Store
	for _, res := range registry.Resources() {
		stores = append(stores, registry.NewStore(res, scheme.Scheme, nil))
	}
	return New(Config{Scheme: scheme.Scheme, Stores: stores})
}

func serveOpenAPIReq(s *Server, url string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// TestOpenAPIHashURLs: the index's hashed URL is immutable, a stale hash
// is 301 to the current URL (upstream's handler3), no hash is a plain
// revalidated document, and the ETag answers If-None-Match with 304.
func TestOpenAPIHashURLs(t *testing.T) {
	s := openAPIServer(t)
	var index struct {
		Paths map[string]struct {
			ServerRelativeURL string `json:"serverRelativeURL"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(serveOpenAPIReq(s, "/openapi/v3", nil).Body.Bytes(), &index); err != nil {
		t.Fatal(err)
	}
	current := index.Paths["apis/apps/v1"].ServerRelativeURL
	_, hash, ok := strings.Cut(current, "?hash=")
	if !ok || len(hash) != 128 {
		t.Fatalf("apps/v1 URL %q has no SHA-512 hash", current)
	}

	w := serveOpenAPIReq(s, current, nil)
	if w.Code != http.StatusOK || w.Header().Get("Cache-Control") != "public, immutable" ||
		w.Header().Get("ETag") != `"`+hash+`"` || w.Header().Get("Vary") != "Accept" {
		t.Fatalf("current hash: %d %v", w.Code, w.Header())
	}
	exp, err := http.ParseTime(w.Header().Get("Expires"))
	if err != nil || exp.Before(time.Now().AddDate(0, 11, 0)) {
		t.Fatalf("Expires %q (%v), want about a year ahead", w.Header().Get("Expires"), err)
	}
	if !strings.Contains(w.Body.String(), `"io.k8s.api.apps.v1.Deployment"`) {
		t.Fatal("apps/v1 document lacks Deployment")
	}

	stale := "/openapi/v3/apis/apps/v1?hash=" + strings.Repeat("0", 128)
	for _, hdr := range []map[string]string{nil, {"If-None-Match": `"` + hash + `"`}} {
		w = serveOpenAPIReq(s, stale, hdr)
		if w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != current {
			t.Fatalf("stale hash (%v): %d Location %q, want 301 to %q", hdr, w.Code, w.Header().Get("Location"), current)
		}
		if cc := w.Header().Get("Cache-Control"); strings.Contains(cc, "immutable") {
			t.Fatalf("stale hash redirect is cacheable for ever: %q", cc)
		}
	}

	w = serveOpenAPIReq(s, "/openapi/v3/apis/apps/v1", nil)
	if w.Code != http.StatusOK || w.Header().Get("Cache-Control") != "no-cache, private" ||
		w.Header().Get("ETag") != `"`+hash+`"` || w.Header().Get("Expires") != "" {
		t.Fatalf("no hash: %d %v", w.Code, w.Header())
	}
	if w = serveOpenAPIReq(s, "/openapi/v3/apis/apps/v1", map[string]string{"If-None-Match": `"` + hash + `"`}); w.Code != http.StatusNotModified {
		t.Fatalf("revalidation: %d, want 304", w.Code)
	}
}
