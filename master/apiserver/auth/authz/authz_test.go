package authz

import (
	"context"
	"errors"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/hoist-project/hoist/master/apiserver/auth/user"
)

// fakePods maps "ns/name" to the node the pod is bound to.
type fakePods map[string]string

func (f fakePods) PodNodeName(_ context.Context, ns, name string) (string, error) {
	if n, ok := f[ns+"/"+name]; ok {
		return n, nil
	}
	if name == "broken" {
		return "", errors.New("etcd unavailable")
	}
	return "", apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, name)
}

var n1 = user.Info{Name: "system:node:n1", Groups: []string{user.NodesGroup, user.AllAuthenticated}}

func res(verb, group, resource, sub, ns, name string) Attributes {
	return Attributes{User: n1, Verb: verb, APIGroup: group, Resource: resource, Subresource: sub, Namespace: ns, Name: name, IsResourceRequest: true}
}

func TestNodeAuthorizer(t *testing.T) {
	az := Node{Pods: fakePods{"default/mine": "n1", "default/theirs": "n2"}}
	mirror := res("create", "", "pods", "", "kube-system", "static-n1")
	mirror.ObjectNodeName = "n1"
	foreignMirror := res("create", "", "pods", "", "kube-system", "static-n2")
	foreignMirror.ObjectNodeName = "n2"
	tests := []struct {
		name string
		a    Attributes
		want Decision
	}{
		{"get own node", res("get", "", "nodes", "", "", "n1"), Allow},
		{"get other node (read-only)", res("get", "", "nodes", "", "", "n2"), Allow},
		{"list nodes", res("list", "", "nodes", "", "", ""), Allow},
		{"create own node", res("create", "", "nodes", "", "", "n1"), Allow},
		{"create node without name", res("create", "", "nodes", "", "", ""), NoOpinion},
		{"create other node", res("create", "", "nodes", "", "", "n2"), NoOpinion},
		{"patch own node status", res("patch", "", "nodes", "status", "", "n1"), Allow},
		{"update other node status", res("update", "", "nodes", "status", "", "n2"), NoOpinion},
		{"update other node", res("update", "", "nodes", "", "", "n2"), NoOpinion},
		{"delete other node", res("delete", "", "nodes", "", "", "n2"), NoOpinion},
		{"own lease", res("update", "coordination.k8s.io", "leases", "", "kube-node-lease", "n1"), Allow},
		{"get own lease", res("get", "coordination.k8s.io", "leases", "", "kube-node-lease", "n1"), Allow},
		{"other lease", res("update", "coordination.k8s.io", "leases", "", "kube-node-lease", "n2"), NoOpinion},
		{"own-named lease elsewhere", res("update", "coordination.k8s.io", "leases", "", "default", "n1"), NoOpinion},
		{"list leases", res("list", "coordination.k8s.io", "leases", "", "kube-node-lease", ""), NoOpinion},
		{"watch pods", res("watch", "", "pods", "", "", ""), Allow},
		{"get secret", res("get", "", "secrets", "", "default", "s"), Allow},
		{"get configmap", res("get", "", "configmaps", "", "default", "c"), Allow},
		{"list services", res("list", "", "services", "", "", ""), Allow},
		{"list endpointslices", res("list", "discovery.k8s.io", "endpointslices", "", "", ""), Allow},
		{"create secret", res("create", "", "secrets", "", "default", "s"), NoOpinion},
		{"update configmap", res("update", "", "configmaps", "", "default", "c"), NoOpinion},
		{"delete service", res("delete", "", "services", "", "default", "s"), NoOpinion},
		{"list deployments", res("list", "apps", "deployments", "", "", ""), NoOpinion},
		{"create event", res("create", "", "events", "", "default", ""), Allow},
		{"create events.k8s.io event", res("create", "events.k8s.io", "events", "", "default", ""), Allow},
		{"delete event", res("delete", "", "events", "", "default", "e"), NoOpinion},
		{"update status of bound pod", res("update", "", "pods", "status", "default", "mine"), Allow},
		{"patch status of bound pod", res("patch", "", "pods", "status", "default", "mine"), Allow},
		{"update status of foreign pod", res("update", "", "pods", "status", "default", "theirs"), NoOpinion},
		{"delete bound pod", res("delete", "", "pods", "", "default", "mine"), Allow},
		{"delete foreign pod", res("delete", "", "pods", "", "default", "theirs"), NoOpinion},
		{"delete missing pod", res("delete", "", "pods", "", "default", "ghost"), NoOpinion},
		{"update bound pod spec", res("update", "", "pods", "", "default", "mine"), NoOpinion},
		{"exec into bound pod", res("create", "", "pods", "exec", "default", "mine"), NoOpinion},
		{"create mirror pod", mirror, Allow},
		{"create pod for other node", foreignMirror, NoOpinion},
		{"get pod logs", res("get", "", "pods", "log", "default", "mine"), NoOpinion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, reason, err := az.Authorize(context.Background(), tc.a)
			if err != nil {
				t.Fatal(err)
			}
			if d != tc.want {
				t.Fatalf("decision %v, want %v (reason %q)", d, tc.want, reason)
			}
			if d != Allow && reason == "" {
				t.Error("a refusal must carry a reason")
			}
		})
	}
}

func TestNodeAuthorizerIgnoresNonNodes(t *testing.T) {
	az := Node{Pods: fakePods{}}
	for _, u := range []user.Info{
		{Name: "system:node:n1"}, // right name, not in system:nodes
		{Name: "alice", Groups: []string{user.NodesGroup}},
		user.AnonymousInfo(),
	} {
		a := res("get", "", "nodes", "", "", "n1")
		a.User = u
		if d, _, _ := az.Authorize(context.Background(), a); d != NoOpinion {
			t.Errorf("user %+v: decision %v, want no-opinion", u, d)
		}
	}
}

func TestNodeAuthorizerLookupFailureIsAnError(t *testing.T) {
	az := Node{Pods: fakePods{}}
	d, _, err := az.Authorize(context.Background(), res("delete", "", "pods", "", "default", "broken"))
	if d == Allow || err == nil {
		t.Fatalf("decision %v err %v: a failed lookup must be an error, not a decision", d, err)
	}
}

func TestUnion(t *testing.T) {
	ctx := context.Background()
	admin := Attributes{User: user.Info{Name: "kubernetes-admin", Groups: []string{user.MastersGroup}}, Verb: "delete", Resource: "nodes", Name: "n2", IsResourceRequest: true}
	chain := Union{Masters(), Discovery(), Node{Pods: fakePods{}}}
	if d, _, err := chain.Authorize(ctx, admin); d != Allow || err != nil {
		t.Errorf("admin: %v %v", d, err)
	}
	if d, reason, _ := chain.Authorize(ctx, res("delete", "", "nodes", "", "", "n2")); d != NoOpinion || reason == "" {
		t.Errorf("node deleting other node: %v %q", d, reason)
	}
	deny := Func(func(context.Context, Attributes) (Decision, string, error) { return Deny, "blocked", nil })
	if d, reason, _ := (Union{deny, Masters()}).Authorize(ctx, admin); d != Deny || reason != "blocked" {
		t.Errorf("explicit deny must stop the chain: %v %q", d, reason)
	}
}

func TestDiscovery(t *testing.T) {
	ctx := context.Background()
	anon, alice := user.AnonymousInfo(), user.Info{Name: "alice", Groups: []string{user.AllAuthenticated}}
	tests := []struct {
		u    user.Info
		verb string
		path string
		want Decision
	}{
		{anon, "get", "/healthz", Allow},
		{anon, "get", "/livez/ping", Allow},
		{anon, "get", "/readyz", Allow},
		{anon, "get", "/version", Allow},
		{anon, "get", "/healthzfoo", NoOpinion},
		{anon, "get", "/api", NoOpinion},
		{anon, "post", "/healthz", NoOpinion},
		{alice, "get", "/api", Allow},
		{alice, "get", "/apis/apps/v1", Allow},
		{alice, "get", "/openapi/v2", Allow},
		{alice, "get", "/metrics", NoOpinion},
	}
	for _, tc := range tests {
		d, _, _ := Discovery().Authorize(ctx, Attributes{User: tc.u, Verb: tc.verb, Path: tc.path})
		if d != tc.want {
			t.Errorf("%s %s %s: %v, want %v", tc.u.Name, tc.verb, tc.path, d, tc.want)
		}
	}
}

func TestBasicUser(t *testing.T) {
	sa := user.Info{Name: "system:serviceaccount:ns1:default", Groups: []string{"system:serviceaccounts", user.AllAuthenticated}}
	review := func(u user.Info, verb, resource string) Attributes {
		a := res(verb, "authentication.k8s.io", resource, "", "", "")
		a.User = u
		return a
	}
	tests := []struct {
		name string
		a    Attributes
		want Decision
	}{
		{"service account reviews itself", review(sa, "create", "selfsubjectreviews"), Allow},
		{"anonymous may not", review(user.AnonymousInfo(), "create", "selfsubjectreviews"), NoOpinion},
		{"list reviews", review(sa, "list", "selfsubjectreviews"), NoOpinion},
		{"token reviews", review(sa, "create", "tokenreviews"), NoOpinion},
	}
	for _, tt := range tests {
		if d, _, _ := BasicUser().Authorize(context.Background(), tt.a); d != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, d, tt.want)
		}
	}
}
