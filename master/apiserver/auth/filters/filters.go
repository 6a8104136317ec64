// Package filters is the API server's security middleware: authentication
// (401 for bad credentials, and for anonymous requests outside the public
// health/version paths) followed by authorization (403), both answered as
// Kubernetes Status JSON.
package filters

import (
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/hoist-project/hoist/master/apiserver/auth/authn"
	"github.com/hoist-project/hoist/master/apiserver/auth/authz"
	"github.com/hoist-project/hoist/master/apiserver/auth/status"
	"github.com/hoist-project/hoist/master/apiserver/auth/user"
)

// AttributesFunc derives the authorization attributes of a request (the
// request-info parser). It need not set User: the filter does.
type AttributesFunc func(r *http.Request, u user.Info) (authz.Attributes, error)

// Wrap returns next behind authentication and authorization. log receives
// the reason of every rejection (nil discards).
func Wrap(next http.Handler, an authn.Authenticator, az authz.Authorizer, attrs AttributesFunc, log *slog.Logger) http.Handler {
	return WithAuthentication(WithAuthorization(next, az, attrs, log), an, log)
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// WithAuthentication identifies the caller and stores it in the request
// context (user.From). Invalid credentials get 401; so does a request without
// credentials unless its path is public (authz.IsPublicPath), in which case
// it proceeds as system:anonymous.
func WithAuthentication(next http.Handler, an authn.Authenticator, log *slog.Logger) http.Handler {
	log = logger(log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok, err := an.AuthenticateRequest(r)
		switch {
		case err != nil:
			log.Info("authentication failed", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
			status.Write(w, apierrors.NewUnauthorized("Unauthorized"))
			return
		case !ok && !authz.IsPublicPath(r.URL.Path):
			log.Info("anonymous request rejected", "path", r.URL.Path, "remote", r.RemoteAddr)
			status.Write(w, apierrors.NewUnauthorized("Unauthorized"))
			return
		case !ok:
			u = user.AnonymousInfo()
		default:
			if !u.InGroup(user.AllAuthenticated) {
				u.Groups = append(slices.Clip(u.Groups), user.AllAuthenticated)
			}
			// The credential is consumed here; nothing downstream needs it.
			r.Header.Del("Authorization")
		}
		next.ServeHTTP(w, r.WithContext(user.WithUser(r.Context(), u)))
	})
}

// WithAuthorization asks az about the request described by attrs and
// answers 403 unless it is allowed. For create requests of nodes it first
// reads the object's name and spec.nodeName from the JSON body (and puts the
// body back), because the URL of a create names no object.
func WithAuthorization(next http.Handler, az authz.Authorizer, attrs AttributesFunc, log *slog.Logger) http.Handler {
	log = logger(log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := user.From(r.Context())
		if !ok {
			status.Write(w, apierrors.NewInternalError(fmt.Errorf("no user in request context: authentication filter missing")))
			return
		}
		a, err := attrs(r, u)
		if err != nil {
			status.Write(w, apierrors.NewBadRequest(err.Error()))
			return
		}
		a.User = u
		if _, isNode := authz.NodeName(u); isNode && a.IsResourceRequest && a.Verb == "create" {
			if err := fillFromBody(r, &a); err != nil {
				status.Write(w, apierrors.NewBadRequest(err.Error()))
				return
			}
		}
		d, reason, err := az.Authorize(r.Context(), a)
		if d == authz.Allow {
			next.ServeHTTP(w, r)
			return
		}
		if err != nil {
			log.Error("authorization failed", "user", u.Name, "path", r.URL.Path, "err", err)
			status.Write(w, apierrors.NewInternalError(fmt.Errorf("authorization failed: %w", err)))
			return
		}
		log.Info("forbidden", "user", u.Name, "verb", a.Verb, "path", r.URL.Path, "reason", reason)
		status.Write(w, Forbidden(a, reason))
	})
}

// Forbidden builds the upstream-style 403, e.g.
// pods "p" is forbidden: User "system:node:n1" cannot delete resource "pods"
// in API group "" in the namespace "default": <reason>.
func Forbidden(a authz.Attributes, reason string) *apierrors.StatusError {
	msg := ForbiddenMessage(a)
	if reason != "" {
		msg += ": " + reason
	}
	gr := schema.GroupResource{Group: a.APIGroup, Resource: a.Resource}
	return apierrors.NewForbidden(gr, a.Name, fmt.Errorf("%s", msg))
}

// ForbiddenMessage says who may not do what, worded as upstream does.
func ForbiddenMessage(a authz.Attributes) string {
	if !a.IsResourceRequest {
		return fmt.Sprintf("User %q cannot %s path %q", a.User.Name, a.Verb, a.Path)
	}
	resource := a.Resource
	if a.Subresource != "" {
		resource += "/" + a.Subresource
	}
	if a.Namespace != "" {
		return fmt.Sprintf("User %q cannot %s resource %q in API group %q in the namespace %q", a.User.Name, a.Verb, resource, a.APIGroup, a.Namespace)
	}
	return fmt.Sprintf("User %q cannot %s resource %q in API group %q at the cluster scope", a.User.Name, a.Verb, resource, a.APIGroup)
}
