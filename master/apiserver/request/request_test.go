package request

import "testing"

func TestParsePath(t *testing.T) {
	cases := []struct {
		method, path, watch string
		want                Info
	}{
		{"GET", "/api/v1/namespaces/default/pods", "", Info{Verb: "list", APIVersion: "v1", Namespace: "default", Resource: "pods"}},
		{"GET", "/api/v1/namespaces/default/pods", "true", Info{Verb: "watch", APIVersion: "v1", Namespace: "default", Resource: "pods"}},
		{"GET", "/api/v1/watch/namespaces/default/pods/p1", "", Info{Verb: "watch", APIVersion: "v1", Namespace: "default", Resource: "pods", Name: "p1"}},
		{"GET", "/api/v1/namespaces/default/pods/p1", "", Info{Verb: "get", APIVersion: "v1", Namespace: "default", Resource: "pods", Name: "p1"}},
		{"PUT", "/api/v1/namespaces/default/pods/p1/status", "", Info{Verb: "update", APIVersion: "v1", Namespace: "default", Resource: "pods", Name: "p1", Subresource: "status"}},
		{"POST", "/api/v1/namespaces/default/pods/p1/eviction", "", Info{Verb: "create", APIVersion: "v1", Namespace: "default", Resource: "pods", Name: "p1", Subresource: "eviction"}},
		{"DELETE", "/api/v1/namespaces/default/pods", "", Info{Verb: "deletecollection", APIVersion: "v1", Namespace: "default", Resource: "pods"}},
		{"GET", "/api/v1/namespaces", "", Info{Verb: "list", APIVersion: "v1", Resource: "namespaces"}},
		{"GET", "/api/v1/namespaces/kube-system", "", Info{Verb: "get", APIVersion: "v1", Namespace: "kube-system", Resource: "namespaces", Name: "kube-system"}},
		{"PUT", "/api/v1/namespaces/x/finalize", "", Info{Verb: "update", APIVersion: "v1", Namespace: "x", Resource: "namespaces", Name: "x", Subresource: "finalize"}},
		{"PATCH", "/apis/apps/v1/namespaces/d/deployments/web/scale", "", Info{Verb: "patch", APIGroup: "apps", APIVersion: "v1", Namespace: "d", Resource: "deployments", Name: "web", Subresource: "scale"}},
		{"GET", "/api/v1/nodes/n1", "", Info{Verb: "get", APIVersion: "v1", Resource: "nodes", Name: "n1"}},
	}
	for _, c := range cases {
		got := ParsePath(c.method, c.path, c.watch)
		c.want.IsResourceRequest = true
		c.want.Path = c.path
		c.want.APIPrefix = "api"
		if c.want.APIGroup != "" {
			c.want.APIPrefix = "apis"
		}
		if got != c.want {
			t.Errorf("%s %s: got %+v, want %+v", c.method, c.path, got, c.want)
		}
	}
	for _, p := range []string{"/healthz", "/api", "/apis", "/apis/apps", "/version", "/api/v1"} {
		if got := ParsePath("GET", p, ""); got.IsResourceRequest {
			t.Errorf("%s parsed as resource request: %+v", p, got)
		}
	}
}
