package apiserver

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/hoist-project/hoist/master/apiserver/openapi"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The OpenAPI v3 documents (one per group/version, see package openapi)
// are built on the first request, not at start, so a master nobody runs
// kubectl explain/apply against does not hold them, and then kept: they
// only change with the binary. /openapi/v2 is not served; kubectl 1.32
// uses v3 for explain, apply and field validation.

// openAPIDoc is one serialized document and its hash, which the index
// puts in the document's URL so clients can cache it.
type openAPIDoc struct {
	data []byte
	hash string
}

type openAPIDocs struct {
	once sync.Once
	byGV map[string]openAPIDoc // by group/version path
}

// openAPIDocs builds the documents once.
func (s *Server) openAPIDocs() map[string]openAPIDoc {
	s.openapi.once.Do(func() {
		var resources []openapi.Resource
		for _, st := range s.cfg.Stores {
			resources = append(resources, openapi.Resource{Kind: st.Res.GroupVersionKind(), Name: st.Res.Name,
				Namespaced: st.Res.Namespaced, Subresources: st.Res.Subresources})
		}
		typeOf := func(gvk schema.GroupVersionKind) reflect.Type {
			obj, err := s.cfg.Scheme.New(gvk)
			if err != nil {
				return nil
			}
			return reflect.TypeOf(obj)
		}
		s.openapi.byGV = map[string]openAPIDoc{}
		for _, gv := range s.groups {
			data, err := json.Marshal(openapi.Document("Kubernetes", s.cfg.Version.GitVersion, gv, resources, typeOf))
			if err != nil {
				panic(err) // maps of JSON values only: cannot fail
			}
			sum := sha512.Sum512(data)
			s.openapi.byGV[openapi.GroupVersionPath(gv)] = openAPIDoc{data: data, hash: strings.ToUpper(hex.EncodeToString(sum[:]))}
		}
	})
	return s.openapi.byGV
}

// openAPIURL is the server-relative URL of the document of gv (its path
// under /openapi/v3) with that hash.
func openAPIURL(gv, hash string) string { return "/openapi/v3/" + gv + "?hash=" + hash }

func (s *Server) serveOpenAPI(w http.ResponseWriter, r *http.Request, path string) {
	rest, ok := strings.CutPrefix(path, "/openapi/v3")
	if !ok {
		writeError(w, r, apierrors.NewNotFound(schema.GroupResource{}, path))
		return
	}
	docs := s.openAPIDocs()
	rest = strings.Trim(rest, "/")
	if rest == "" {
		index := map[string]any{}
		for gv, doc := range docs {
			index[gv] = map[string]string{"serverRelativeURL": openAPIURL(gv, doc.hash)}
		}
		writeObject(w, r, http.StatusOK, map[string]any{"paths": index})
		return
	}
	doc, ok := docs[rest]
	if !ok {
		writeError(w, r, apierrors.NewNotFound(schema.GroupResource{}, path))
		return
	}
	etag := `"` + doc.hash + `"`
	w.Header().Set("ETag", etag)
	switch hash := r.URL.Query().Get("hash"); hash {
	case "":
		w.Header().Set("Cache-Control", "no-cache, private")
	case doc.hash:
		// The URL names this very content: clients may keep it, as
		// upstream's handler3 says (Expires a year ahead; Vary because
		// the Accept header could change the representation).
		w.Header().Set("Cache-Control", "public, immutable")
		w.Header().Set("Expires", time.Now().UTC().AddDate(1, 0, 0).Format(http.TimeFormat))
		w.Header().Set("Vary", "Accept")
	default:
		// A stale URL (an index read before the documents changed): send
		// the client to the current one, as upstream does, so an immutable
		// cache never files this document under the old hash. The
		// redirect itself is not to be kept: the next binary moves it.
		w.Header().Set("Cache-Control", "no-cache, private")
		http.Redirect(w, r, openAPIURL(rest, doc.hash), http.StatusMovedPermanently)
		return
	}
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(doc.data)
}
