// Package request parses a Kubernetes API request path and method into the
// attributes that routing, authorization and metrics need (verb, group,
// version, resource, subresource, namespace, name). It has no dependency on
// the rest of the API server so authentication/authorization middleware can
// use it on its own.
package request

import (
	"net/http"
	"strings"
)

// Info describes one API request. For non-resource paths (/healthz, /api,
// /version, ...) IsResourceRequest is false and Verb is the lower-cased HTTP
// method.
type Info struct {
	IsResourceRequest bool
	Path              string
	// Verb is one of get, list, watch, create, update, patch, delete,
	// deletecollection for resource requests.
	Verb        string
	APIPrefix   string // "api" or "apis"
	APIGroup    string // "" for the core group
	APIVersion  string
	Namespace   string
	Resource    string
	Subresource string
	Name        string
}

// Parse returns the request attributes of r. It never fails: paths that are
// not resource paths come back with IsResourceRequest false.
func Parse(r *http.Request) Info {
	return ParsePath(r.Method, r.URL.Path, r.URL.Query().Get("watch"))
}

// ParsePath is Parse on the pieces of a request; watchParam is the value of
// the legacy ?watch= query parameter.
func ParsePath(method, path, watchParam string) Info {
	info := Info{Path: path, Verb: strings.ToLower(method)}
	parts := splitPath(path)
	if len(parts) < 3 {
		return info
	}
	switch parts[0] {
	case "api":
		info.APIPrefix = "api"
		info.APIVersion = parts[1]
		parts = parts[2:]
	case "apis":
		if len(parts) < 4 {
			return info
		}
		info.APIPrefix = "apis"
		info.APIGroup = parts[1]
		info.APIVersion = parts[2]
		parts = parts[3:]
	default:
		return info
	}
	info.IsResourceRequest = true

	// Legacy /watch/ prefix: /api/v1/watch/namespaces/x/pods.
	isWatch := watchParam == "true" || watchParam == "1"
	if parts[0] == "watch" {
		isWatch = true
		parts = parts[1:]
		if len(parts) == 0 {
			info.IsResourceRequest = false
			return info
		}
	}

	if parts[0] == "namespaces" && len(parts) > 1 {
		// /namespaces/{ns}/{resource}[/{name}[/{sub}]], except the namespace
		// object's own subresources /namespaces/{name}/status|finalize.
		info.Namespace = parts[1]
		if len(parts) > 2 && parts[2] != "status" && parts[2] != "finalize" {
			parts = parts[2:]
		}
	}
	info.Resource = parts[0]
	if len(parts) >= 2 {
		info.Name = parts[1]
	}
	if len(parts) >= 3 {
		info.Subresource = parts[2]
	}

	switch info.Verb {
	case "get", "head":
		info.Verb = "get"
		if info.Name == "" {
			info.Verb = "list"
		}
		if isWatch {
			info.Verb = "watch"
		}
	case "post":
		info.Verb = "create"
	case "put":
		info.Verb = "update"
	case "patch":
		info.Verb = "patch"
	case "delete":
		info.Verb = "delete"
		if info.Name == "" {
			info.Verb = "deletecollection"
		}
	}
	return info
}

func splitPath(path string) []string {
	path = strings.Trim(path, "/")
	if path == "" {
		return nil
	}
	return strings.Split(path, "/")
}
