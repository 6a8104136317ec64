// Package authz decides whether a user may perform a request: an Authorizer
// interface over request Attributes, and the built-in policies (cluster
// admins, public discovery/health paths, the node authorizer) combined by
// a Union.
package authz

import (
	"context"
	"errors"
	"strings"

	"github.com/hoist-project/hoist/master/apiserver/auth/user"
)

// Decision is an authorizer's verdict.
type Decision int

const (
	// NoOpinion lets the next authorizer decide; if none allows, the request is denied.
	NoOpinion Decision = iota
	Allow
	// Deny stops the chain: no later authorizer can allow.
	Deny
)

func (d Decision) String() string {
	switch d {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	}
	return "no-opinion"
}

// Attributes describe one request, as the request-info parser sees it.
type Attributes struct {
	User user.Info
	// Verb is the Kubernetes verb (get, list, watch, create, update, patch,
	// delete, deletecollection) for resource requests, the lower-case HTTP
	// method for non-resource requests.
	Verb              string
	APIGroup          string
	APIVersion        string
	Resource          string
	Subresource       string
	Namespace         string
	Name              string
	Path              string
	IsResourceRequest bool
	// ObjectNodeName is spec.nodeName of the pod in a create request's body
	// (empty otherwise). For create, Name is likewise taken from the body's
	// metadata.name when the URL has none. See filters.WithAuthorization.
	ObjectNodeName string
}

// Authorizer decides on a request. reason explains the decision to the
// caller (it is appended to a 403 message); err reports a failure to decide.
type Authorizer interface {
	Authorize(ctx context.Context, a Attributes) (d Decision, reason string, err error)
}

// Func adapts a function to Authorizer.
type Func func(ctx context.Context, a Attributes) (Decision, string, error)

func (f Func) Authorize(ctx context.Context, a Attributes) (Decision, string, error) {
	return f(ctx, a)
}

// Union asks each authorizer in order: the first Allow or Deny wins. When
// all have no opinion, the reasons and errors are joined.
type Union []Authorizer

func (u Union) Authorize(ctx context.Context, a Attributes) (Decision, string, error) {
	var reasons []string
	var errs []error
	for _, az := range u {
		d, reason, err := az.Authorize(ctx, a)
		if err != nil {
			errs = append(errs, err)
		}
		if d == Allow || d == Deny {
			return d, reason, nil
		}
		if reason != "" {
			reasons = append(reasons, reason)
		}
	}
	return NoOpinion, strings.Join(reasons, "; "), errors.Join(errs...)
}

// Masters allows everything to members of system:masters (the admin).
func Masters() Authorizer {
	return Func(func(_ context.Context, a Attributes) (Decision, string, error) {
		if a.User.InGroup(user.MastersGroup) {
			return Allow, "", nil
		}
		return NoOpinion, "", nil
	})
}

// publicPaths may be read by anyone, including the anonymous user
// (upstream's system:public-info-viewer).
func publicPaths() []string { return []string{"/healthz", "/livez", "/readyz", "/version"} }

// discoveryPaths may be read by every authenticated user (upstream's
// system:discovery): API discovery and the OpenAPI documents clients need.
func discoveryPaths() []string { return []string{"/api", "/apis", "/openapi"} }

// IsPublicPath reports whether path is one of the health/version endpoints
// open to anonymous requests, or below one of them.
func IsPublicPath(path string) bool { return underAny(path, publicPaths()) }

func underAny(path string, roots []string) bool {
	for _, root := range roots {
		if path == root || strings.HasPrefix(path, root+"/") {
			return true
		}
	}
	return false
}

// Discovery allows GET of the health and version endpoints to anyone and
// of the discovery and OpenAPI endpoints to authenticated users.
func Discovery() Authorizer {
	return Func(func(_ context.Context, a Attributes) (Decision, string, error) {
		if a.IsResourceRequest || (a.Verb != "get" && a.Verb != "head") {
			return NoOpinion, "", nil
		}
		if IsPublicPath(a.Path) {
			return Allow, "", nil
		}
		if !a.User.IsAnonymous() && underAny(a.Path, discoveryPaths()) {
			return Allow, "", nil
		}
		return NoOpinion, "", nil
	})
}

// BasicUser lets every authenticated user ask who it is (create
// selfsubjectreviews), as upstream's system:basic-user role does.
func BasicUser() Authorizer {
	return Func(func(_ context.Context, a Attributes) (Decision, string, error) {
		if a.IsResourceRequest && !a.User.IsAnonymous() && a.Verb == "create" &&
			a.APIGroup == "authentication.k8s.io" && a.Resource == "selfsubjectreviews" && a.Subresource == "" {
			return Allow, "", nil
		}
		return NoOpinion, "", nil
	})
}

// Default is hoist's authorization chain: cluster admins, public and
// discovery paths, self reviews, then the node authorizer; anything else
// is denied.
func Default(pods PodNodeNamer) Authorizer {
	return Union{Masters(), Discovery(), BasicUser(), Node{Pods: pods}}
}
