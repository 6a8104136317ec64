package authn

import (
	"crypto/x509"
	"fmt"
	"net/http"
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
}

func (a X509) AuthenticateRequest(r *http.Request) (user.Info, bool, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return user.Info{}, false, nil
	}
	leaf := r.TLS.PeerCertificates[0]
	opts := x509.VerifyOptions{
		Roots:         a.Roots,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if a.Now != nil {
		opts.CurrentTime = a.Now()
	}
	for _, c := range r.TLS.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := leaf.Verify(opts); err != nil {
		return user.Info{}, false, fmt.Errorf("client certificate %q: %w", leaf.Subject.CommonName, err)
	}
	if leaf.Subject.CommonName == "" {
		return user.Info{}, false, fmt.Errorf("client certificate has an empty common name")
	}
	return user.Info{Name: leaf.Subject.CommonName, Groups: append([]string(nil), leaf.Subject.Organization...)}, true, nil
}
