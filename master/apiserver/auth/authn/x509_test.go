package authn

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/hoist-project/hoist/master/pki"
)

func TestX509(t *testing.T) {
	for _, cache := range []*VerifyCache{nil, NewVerifyCache(2)} {
		testX509(t, cache)
	}
}

// testX509 runs every case twice, so with a cache the second round is
// answered from it: refusals must stay refusals and expiry must count.
func testX509(t *testing.T, cache *VerifyCache) {
	p, err := pki.Ensure(pki.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.Ensure(pki.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	load := func(path string) *tls.ConnectionState {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		c, err := pki.ParseCertPEM(data)
		if err != nil {
			t.Fatal(err)
		}
		return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}}
	}
	req := func(cs *tls.ConnectionState) *http.Request {
		r := httptest.NewRequest("GET", "/api", nil)
		r.TLS = cs
		return r
	}
	a := X509{Roots: p.CA.Pool(), Cache: cache}
	for range 2 {

		u, ok, err := a.AuthenticateRequest(req(load(p.AdminCertPath)))
		if err != nil || !ok || u.Name != pki.AdminUser || !slices.Equal(u.Groups, []string{pki.MastersGroup}) {
			t.Errorf("admin cert: %+v %v %v", u, ok, err)
		}
		if _, ok, err := a.AuthenticateRequest(req(load(other.AdminCertPath))); ok || err == nil {
			t.Errorf("foreign CA: ok=%v err=%v", ok, err)
		}
		if _, ok, err := a.AuthenticateRequest(req(load(p.ServingCertPath))); ok || err == nil {
			t.Errorf("serving cert (no client-auth usage): ok=%v err=%v", ok, err)
		}
		expired := X509{Roots: p.CA.Pool(), Cache: cache, Now: func() time.Time { return time.Now().Add(2 * pki.LeafValidity) }}
		if _, ok, err := expired.AuthenticateRequest(req(load(p.AdminCertPath))); ok || err == nil {
			t.Errorf("expired cert: ok=%v err=%v", ok, err)
		}
		if _, ok, err := a.AuthenticateRequest(req(nil)); ok || err != nil {
			t.Errorf("plain HTTP: ok=%v err=%v, want not-mine", ok, err)
		}
		if _, ok, err := a.AuthenticateRequest(req(&tls.ConnectionState{})); ok || err != nil {
			t.Errorf("TLS without cert: ok=%v err=%v, want not-mine", ok, err)
		}
	}
}
