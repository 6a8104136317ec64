// Package apiserver serves the Kubernetes REST API over the generic registry:
// discovery, version and health endpoints, and get/list/watch/create/update/
// patch/delete for every resource descriptor, in JSON, YAML and Table form.
// It is a plain http.Handler so authentication and authorization can wrap it.
package apiserver

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/hoist-project/hoist/master/apiserver/auth/authn"
	"github.com/hoist-project/hoist/master/apiserver/request"
	"github.com/hoist-project/hoist/master/registry"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
)

// Config of the API server handler.
type Config struct {
	Scheme  *runtime.Scheme
	Stores  []*registry.Store
	Version version.Info
	// Ready reports whether the backing store is healthy (for /readyz).
	Ready func(ctx context.Context) error
	// BookmarkInterval is how often idle watches that asked for bookmarks
	// get one.
	BookmarkInterval time.Duration
	// Admission runs before writes (namespace lifecycle, allocators,
	// eviction); may be nil.
	Admission Admission
	// Observe records each resource request (for metrics); may be nil.
	Observe func(info request.Info, code int, d time.Duration)
	// Tokens signs serviceaccounts/{name}/token requests; nil serves none.
	Tokens *authn.Issuer
	// Extra serves additional non-resource paths such as /metrics.
	Extra map[string]http.Handler
}

// Server is the API server handler.
type Server struct {
	cfg    Config
	stores map[schema.GroupVersionResource]*registry.Store
	// groups in discovery order; core ("") first.
	groups  []schema.GroupVersion
	openapi openAPIDocs
}

// New returns the handler serving cfg.Stores.
func New(cfg Config) *Server {
	if cfg.BookmarkInterval == 0 {
		cfg.BookmarkInterval = time.Minute
	}
	if cfg.Admission == nil {
		cfg.Admission = nopAdmission{}
	}
	s := &Server{cfg: cfg, stores: map[schema.GroupVersionResource]*registry.Store{}}
	seen := map[schema.GroupVersion]bool{}
	for _, st := range cfg.Stores {
		s.stores[st.Res.GroupVersionResource()] = st
		if gv := st.Res.GroupVersion; !seen[gv] {
			seen[gv] = true
			s.groups = append(s.groups, gv)
		}
	}
	sort.SliceStable(s.groups, func(i, j int) bool { return s.groups[i].Group == "" && s.groups[j].Group != "" })
	return s
}

// Store returns the store of a resource, or nil.
func (s *Server) Store(gvr schema.GroupVersionResource) *registry.Store { return s.stores[gvr] }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	info := request.Parse(r)
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	defer func() {
		if s.cfg.Observe != nil {
			s.cfg.Observe(info, rec.code, time.Since(start))
		}
	}()
	if info.IsResourceRequest {
		s.serveResource(rec, r, info)
		return
	}
	s.serveNonResource(rec, r)
}

func (s *Server) serveNonResource(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	if h, ok := s.cfg.Extra[path]; ok {
		h.ServeHTTP(w, r)
		return
	}
	switch {
	case path == "/version":
		writeObject(w, r, http.StatusOK, s.cfg.Version)
	case path == "/healthz" || path == "/livez" || strings.HasPrefix(path, "/healthz/") || strings.HasPrefix(path, "/livez/"):
		writeText(w, http.StatusOK, "ok")
	case path == "/readyz" || strings.HasPrefix(path, "/readyz/"):
		if err := s.cfg.Ready(r.Context()); err != nil {
			writeText(w, http.StatusServiceUnavailable, "[-]etcd failed: "+err.Error()+"\nreadyz check failed")
			return
		}
		writeText(w, http.StatusOK, "ok")
	case path == "/api":
		s.serveCoreVersions(w, r)
	case path == "/apis":
		s.serveGroupList(w, r)
	case strings.HasPrefix(path, "/openapi/"):
		s.serveOpenAPI(w, r, path)
	default:
		if s.serveDiscoveryPath(w, r, path) {
			return
		}
		writeError(w, r, apierrors.NewNotFound(schema.GroupResource{}, ""))
	}
}

func writeText(w http.ResponseWriter, code int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(text))
}

// statusRecorder remembers the response code for metrics and keeps
// flushing available for watches.
type statusRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
