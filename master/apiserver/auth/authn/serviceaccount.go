package authn

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/hoist-project/hoist/master/apiserver/auth/user"
)

// Service account tokens are ES256 JWTs with upstream's claims. Issuer
// signs them for the TokenRequest API; ServiceAccountTokens verifies them
// and checks that the objects they name still exist.

// Service account naming, as upstream.
const (
	ServiceAccountUserPrefix    = "system:serviceaccount:"
	AllServiceAccountsGroup     = "system:serviceaccounts"
	ServiceAccountGroupPrefix   = "system:serviceaccounts:"
	DefaultServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
)

// ObjectRef names one object by name and uid.
type ObjectRef struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// KubernetesClaims is the private "kubernetes.io" claim.
type KubernetesClaims struct {
	Namespace      string     `json:"namespace"`
	ServiceAccount ObjectRef  `json:"serviceaccount"`
	Pod            *ObjectRef `json:"pod,omitempty"`
}

// Claims of a service account token.
type Claims struct {
	Issuer     string           `json:"iss"`
	Subject    string           `json:"sub"`
	Audience   []string         `json:"aud"`
	Expiry     int64            `json:"exp"`
	IssuedAt   int64            `json:"iat"`
	NotBefore  int64            `json:"nbf"`
	Kubernetes KubernetesClaims `json:"kubernetes.io"`
}

// ServiceAccountUser is the user name of a service account.
func ServiceAccountUser(namespace, name string) string {
	return ServiceAccountUserPrefix + namespace + ":" + name
}

// Issuer signs service account tokens.
type Issuer struct {
	Key *ecdsa.PrivateKey
	// Issuer is the iss claim; Audiences are the default audiences of a
	// request that names none (upstream: the API server's, i.e. the issuer).
	Issuer    string
	Audiences []string
	Now       func() time.Time
}

// TokenSpec says what a token is for.
type TokenSpec struct {
	Namespace      string
	ServiceAccount ObjectRef
	// Pod, when set, binds the token to that pod's lifetime.
	Pod       *ObjectRef
	Audiences []string
	TTL       time.Duration
}

// Issue signs a token; it returns it with its expiry.
func (is *Issuer) Issue(spec TokenSpec) (string, time.Time, error) {
	now := time.Now()
	if is.Now != nil {
		now = is.Now()
	}
	now = now.Truncate(time.Second)
	exp := now.Add(spec.TTL)
	c := Claims{
		Issuer: is.Issuer, Subject: ServiceAccountUser(spec.Namespace, spec.ServiceAccount.Name),
		Audience: spec.Audiences, Expiry: exp.Unix(), IssuedAt: now.Unix(), NotBefore: now.Unix(),
		Kubernetes: KubernetesClaims{Namespace: spec.Namespace, ServiceAccount: spec.ServiceAccount, Pod: spec.Pod},
	}
	tok, err := signES256(is.Key, c)
	return tok, exp, err
}

// LiveObjects reports whether an object still exists with a given uid.
// resource is "serviceaccounts" or "pods".
type LiveObjects interface {
	Live(ctx context.Context, resource, namespace, name, uid string) (bool, error)
}

// clockLeeway tolerates clock skew on exp and nbf (go-jose's default,
// which upstream uses).
const clockLeeway = time.Minute

// ServiceAccountTokens authenticates bearer tokens signed by Key for
// Issuer. Tokens of other issuers (or no JWT at all) are left to the other
// authenticators.
type ServiceAccountTokens struct {
	Key       *ecdsa.PublicKey
	Issuer    string
	Audiences []string
	Objects   LiveObjects
	Now       func() time.Time
}

func (a *ServiceAccountTokens) AuthenticateRequest(r *http.Request) (user.Info, bool, error) {
	token, ok := BearerToken(r)
	if !ok {
		return user.Info{}, false, nil
	}
	hdr, payload, sig, signing, err := splitJWS(token)
	if err != nil {
		return user.Info{}, false, nil
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil || c.Issuer != a.Issuer {
		return user.Info{}, false, nil
	}
	if err := verifyES256(a.Key, hdr, signing, sig); err != nil {
		return user.Info{}, false, fmt.Errorf("service account token: %w", err)
	}
	info, err := a.validate(r.Context(), &c)
	if err != nil {
		return user.Info{}, false, fmt.Errorf("service account token: %w", err)
	}
	return info, true, nil
}

// validate checks the signed claims: time window, audience, and that the
// service account (and bound pod) are the ones the token was issued for.
func (a *ServiceAccountTokens) validate(ctx context.Context, c *Claims) (user.Info, error) {
	now := time.Now()
	if a.Now != nil {
		now = a.Now()
	}
	switch {
	case c.Expiry == 0 || now.After(time.Unix(c.Expiry, 0).Add(clockLeeway)):
		return user.Info{}, errors.New("token has expired")
	case now.Add(clockLeeway).Before(time.Unix(c.NotBefore, 0)):
		return user.Info{}, errors.New("token is not valid yet")
	case !slices.ContainsFunc(c.Audience, func(aud string) bool { return slices.Contains(a.Audiences, aud) }):
		return user.Info{}, errors.New("token audiences are invalid for this server")
	}
	k := c.Kubernetes
	if k.Namespace == "" || k.ServiceAccount.Name == "" || k.ServiceAccount.UID == "" ||
		c.Subject != ServiceAccountUser(k.Namespace, k.ServiceAccount.Name) {
		return user.Info{}, errors.New("token does not name a service account")
	}
	if err := a.live(ctx, "serviceaccounts", k.Namespace, k.ServiceAccount); err != nil {
		return user.Info{}, err
	}
	if k.Pod != nil {
		if err := a.live(ctx, "pods", k.Namespace, *k.Pod); err != nil {
			return user.Info{}, err
		}
	}
	return user.Info{Name: c.Subject, UID: k.ServiceAccount.UID,
		Groups: []string{AllServiceAccountsGroup, ServiceAccountGroupPrefix + k.Namespace, user.AllAuthenticated}}, nil
}

func (a *ServiceAccountTokens) live(ctx context.Context, resource, ns string, ref ObjectRef) error {
	ok, err := a.Objects.Live(ctx, resource, ns, ref.Name, ref.UID)
	if err != nil {
		return fmt.Errorf("looking up %s %s/%s: %w", resource, ns, ref.Name, err)
	}
	if !ok {
		return fmt.Errorf("%s %s/%s (uid %s) no longer exists", resource, ns, ref.Name, ref.UID)
	}
	return nil
}
