package apiserver

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The OpenAPI v3 documents list every path with its operations, the
// x-kubernetes-group-version-kind extension and the query parameters the
// server honours. kubectl reads them to learn that the server validates
// fields itself (fieldValidation), and falls back to its compiled-in types
// for strategic merge patches, so no schemas are published yet.

var writeParams = []map[string]any{
	queryParam("dryRun"), queryParam("fieldManager"), queryParam("fieldValidation"),
}

func queryParam(name string) map[string]any {
	return map[string]any{"name": name, "in": "query", "schema": map[string]any{"type": "string", "uniqueItems": true}}
}

func gvPath(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "api/" + gv.Version
	}
	return "apis/" + gv.Group + "/" + gv.Version
}

func (s *Server) openAPIDoc(gv schema.GroupVersion) map[string]any {
	paths := map[string]any{}
	for _, st := range s.cfg.Stores {
		res := st.Res
		if res.GroupVersion != gv {
			continue
		}
		ext := map[string]string{"group": gv.Group, "version": gv.Version, "kind": res.Kind}
		op := func(action string, params []map[string]any) map[string]any {
			return map[string]any{
				"operationId": action + res.Kind, "x-kubernetes-action": action,
				"x-kubernetes-group-version-kind": ext, "parameters": params,
				"responses": map[string]any{"200": map[string]any{"description": "OK"}},
			}
		}
		base := "/" + gvPath(gv) + "/"
		if res.Namespaced {
			base += "namespaces/{namespace}/"
		}
		base += res.Name
		paths[base] = map[string]any{"get": op("list", nil), "post": op("post", writeParams)}
		item := map[string]any{"get": op("get", nil), "put": op("put", writeParams),
			"patch": op("patch", append(writeParams, queryParam("force"))), "delete": op("delete", nil)}
		paths[base+"/{name}"] = item
		for _, sub := range res.Subresources {
			paths[base+"/{name}/"+sub] = item
		}
	}
	return map[string]any{
		"openapi":    "3.0.0",
		"info":       map[string]any{"title": "Kubernetes", "version": s.cfg.Version.GitVersion},
		"paths":      paths,
		"components": map[string]any{"schemas": map[string]any{}},
	}
}

func (s *Server) serveOpenAPI(w http.ResponseWriter, r *http.Request, path string) {
	rest, ok := strings.CutPrefix(path, "/openapi/v3")
	if !ok {
		writeError(w, r, apierrors.NewNotFound(schema.GroupResource{}, path))
		return
	}
	rest = strings.Trim(rest, "/")
	if rest == "" {
		index := map[string]any{}
		for _, gv := range s.groups {
			data, _ := json.Marshal(s.openAPIDoc(gv))
			sum := sha512.Sum512(data)
			index[gvPath(gv)] = map[string]string{"serverRelativeURL": "/openapi/v3/" + gvPath(gv) + "?hash=" + strings.ToUpper(hex.EncodeToString(sum[:]))}
		}
		writeObject(w, r, http.StatusOK, map[string]any{"paths": index})
		return
	}
	for _, gv := range s.groups {
		if gvPath(gv) == rest {
			data, _ := json.Marshal(s.openAPIDoc(gv))
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(data)
			return
		}
	}
	writeError(w, r, apierrors.NewNotFound(schema.GroupResource{}, path))
}
