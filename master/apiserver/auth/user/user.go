// Package user describes who made an API request, as decided by an
// authenticator, and carries it through the request context.
package user

import (
	"context"
	"slices"
)

// Well-known names (the upstream Kubernetes ones).
const (
	Anonymous          = "system:anonymous"
	AllUnauthenticated = "system:unauthenticated"
	AllAuthenticated   = "system:authenticated"
	MastersGroup       = "system:masters"
	NodesGroup         = "system:nodes"
	NodeUserPrefix     = "system:node:"
)

// Info is an authenticated (or anonymous) identity.
type Info struct {
	Name   string
	UID    string
	Groups []string
}

// AnonymousInfo is the identity of a request that presented no credentials.
func AnonymousInfo() Info {
	return Info{Name: Anonymous, Groups: []string{AllUnauthenticated}}
}

// IsAnonymous reports whether u is the anonymous identity.
func (u Info) IsAnonymous() bool { return u.Name == Anonymous }

// InGroup reports whether u belongs to group.
func (u Info) InGroup(group string) bool { return slices.Contains(u.Groups, group) }

type ctxKey struct{}

// WithUser returns ctx carrying u.
func WithUser(ctx context.Context, u Info) context.Context {
	return context.WithValue(ctx, ctxKey{}, u)
}

// From returns the user stored in ctx by WithUser.
func From(ctx context.Context) (Info, bool) {
	u, ok := ctx.Value(ctxKey{}).(Info)
	return u, ok
}
