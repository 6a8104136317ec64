package authn

import (
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hoist-project/hoist/master/apiserver/auth/user"
)

// X509 authenticates requests by their TLS client certificate: CN is the
// user name, O entries are the groups. The server must request client
// certificates (tls.RequestClientCert); X509 verifies them itself, so a
// certificate from a foreign CA or an expired one yields a 401 Status.
type X509 struct {
	Roots *x509.CertPool
	// Now is the verification time (time.Now when nil).
	Now func() time.Time
	// Cache, if set, remembers chains that verified, so a client's
	// every request does not pay for an ECDSA signature check (which
	// dominated the API's CPU profile under load).
	Cache *VerifyCache
}

func (a X509) AuthenticateRequest(r *http.Request) (user.Info, bool, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return user.Info{}, false, nil
	}
	leaf := r.TLS.PeerCertificates[0]
	now := time.Now()
	if a.Now != nil {
		now = a.Now()
	}
	if !a.Cache.verified(r.TLS.PeerCertificates, now) {
		opts := x509.VerifyOptions{
			Roots:         a.Roots,
			Intermediates: x509.NewCertPool(),
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			CurrentTime:   now,
		}
		for _, c := range r.TLS.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		if _, err := leaf.Verify(opts); err != nil {
			return user.Info{}, false, fmt.Errorf("client certificate %q: %w", leaf.Subject.CommonName, err)
		}
		a.Cache.remember(r.TLS.PeerCertificates)
	}
	if leaf.Subject.CommonName == "" {
		return user.Info{}, false, fmt.Errorf("client certificate has an empty common name")
	}
	return user.Info{Name: leaf.Subject.CommonName, Groups: append([]string(nil), leaf.Subject.Organization...)}, true, nil
}

// VerifyCache remembers certificate chains that verified against one
// X509's roots. An entry is used only while every certificate of the
// chain is within its validity period, so expiry is still enforced.
type VerifyCache struct {
	mu      sync.Mutex
	max     int
	entries map[[sha256.Size]byte]validity
}

type validity struct{ notBefore, notAfter time.Time }

// NewVerifyCache keeps up to max chains (it starts over when full).
func NewVerifyCache(max int) *VerifyCache {
	return &VerifyCache{max: max, entries: map[[sha256.Size]byte]validity{}}
}

func chainKey(chain []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	for _, c := range chain {
		h.Write(c.Raw)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// verified reports whether chain verified before and is valid at now; a
// nil cache knows nothing.
func (c *VerifyCache) verified(chain []*x509.Certificate, now time.Time) bool {
	if c == nil {
		return false
	}
	k := chainKey(chain)
	c.mu.Lock()
	v, ok := c.entries[k]
	c.mu.Unlock()
	return ok && !now.Before(v.notBefore) && !now.After(v.notAfter)
}

func (c *VerifyCache) remember(chain []*x509.Certificate) {
	if c == nil {
		return
	}
	v := validity{notBefore: chain[0].NotBefore, notAfter: chain[0].NotAfter}
	for _, cert := range chain[1:] {
		if cert.NotBefore.After(v.notBefore) {
			v.notBefore = cert.NotBefore
		}
		if cert.NotAfter.Before(v.notAfter) {
			v.notAfter = cert.NotAfter
		}
	}
	k := chainKey(chain)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		clear(c.entries)
	}
	c.entries[k] = v
}
