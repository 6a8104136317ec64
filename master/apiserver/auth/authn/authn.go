// Package authn turns an HTTP request's credentials into a user.Info:
// x509 client certificates verified against the cluster CA, static bearer
// tokens from a token file, and a union that tries each in turn.
package authn

import (
	"errors"
	"net/http"

	"github.com/hoist-project/hoist/master/apiserver/auth/user"
)

// Authenticator identifies the sender of a request.
//
// ok=false with a nil error means "no credentials of my kind": another
// authenticator (or the anonymous user) may apply. A non-nil error means
// credentials were presented and are invalid: the request gets 401.
type Authenticator interface {
	AuthenticateRequest(r *http.Request) (u user.Info, ok bool, err error)
}

// Union tries each authenticator in order; the first that recognises the
// request wins. If none does and any reported invalid credentials, the
// request fails with those errors.
type Union []Authenticator

func (u Union) AuthenticateRequest(r *http.Request) (user.Info, bool, error) {
	var errs []error
	for _, a := range u {
		info, ok, err := a.AuthenticateRequest(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			return info, true, nil
		}
	}
	return user.Info{}, false, errors.Join(errs...)
}
