package pki

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Validity periods. The CA outlives many leaf rotations; leaves are renewed
// automatically on start once they enter the renewal window.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	LeafValidity = 365 * 24 * time.Hour
	RenewBefore  = 30 * 24 * time.Hour
)

// Identities the API server's authorizers recognise (the upstream names).
const (
	AdminUser      = "kubernetes-admin"
	MastersGroup   = "system:masters"
	NodesGroup     = "system:nodes"
	NodeUserPrefix = "system:node:"
)

// ErrSubjectNotAllowed marks a CSR whose subject or extensions the signer
// refuses to certify (for example a node asking for another node's name).
var ErrSubjectNotAllowed = errors.New("certificate request not allowed")

// CA is the cluster certificate authority: it signs every certificate hoist issues.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     *ecdsa.PrivateKey
	now     func() time.Time
}

// Hash is the pin a joining node compares against (see CACertHash).
func (ca *CA) Hash() string { return CACertHash(ca.Cert) }

// Pool returns a pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// loadOrCreateCA never replaces an existing CA: every issued certificate and
// every joined node's pin depends on it.
func loadOrCreateCA(dir string, now func() time.Time) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		cert, key, _, err := readPair(certPath, keyPath)
		if err != nil {
			return nil, fmt.Errorf("cluster CA: %w", err)
		}
		if !sameKey(cert, key) {
			return nil, fmt.Errorf("cluster CA: %s does not belong to %s; restore the matching pair from backup", keyPath, certPath)
		}
		if now().After(cert.NotAfter) {
			return nil, fmt.Errorf("cluster CA %s expired at %s: restore a valid CA or move %s away to start a new cluster", certPath, cert.NotAfter.UTC().Format(time.RFC3339), dir)
		}
		return &CA{Cert: cert, CertPEM: EncodeCertPEM(cert.Raw), key: key, now: now}, nil
	case errors.Is(certErr, os.ErrNotExist) && errors.Is(keyErr, os.ErrNotExist):
		return createCA(certPath, keyPath, now)
	case certErr == nil || keyErr == nil:
		return nil, fmt.Errorf("cluster CA: only one of %s and %s exists; restore the missing file (hoist never regenerates an existing CA)", certPath, keyPath)
	default:
		return nil, fmt.Errorf("cluster CA: %v; %v", certErr, keyErr)
	}
}

func createCA(certPath, keyPath string, now func() time.Time) (*CA, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "hoist-ca"},
		NotBefore:             t.Add(-clockSkew),
		NotAfter:              t.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyPEM, err := EncodeKeyPEM(key)
	if err != nil {
		return nil, err
	}
	certPEM := EncodeCertPEM(der)
	if err := WritePair(certPath, keyPath, certPEM, keyPEM); err != nil {
		return nil, err
	}
	return &CA{Cert: cert, CertPEM: certPEM, key: key, now: now}, nil
}

// Leaf describes a certificate to issue.
type Leaf struct {
	CommonName   string
	Organization []string
	Hosts        []string // DNS names and IPs (server certificates)
	Usage        x509.ExtKeyUsage
	Validity     time.Duration // LeafValidity when zero
}

// Issue signs a certificate for pub.
func (ca *CA) Issue(l Leaf, pub *ecdsa.PublicKey) (*x509.Certificate, []byte, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	validity := l.Validity
	if validity == 0 {
		validity = LeafValidity
	}
	t := ca.now()
	notAfter := t.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	dns, ips := splitHosts(l.Hosts)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: l.CommonName, Organization: l.Organization},
		NotBefore:    t.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{l.Usage},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, EncodeCertPEM(der), nil
}

// IssueWithKey generates a key and signs a certificate for it.
func (ca *CA) IssueWithKey(l Leaf) (certPEM, keyPEM []byte, err error) {
	key, err := NewKey()
	if err != nil {
		return nil, nil, err
	}
	_, certPEM, err = ca.Issue(l, &key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = EncodeKeyPEM(key)
	return certPEM, keyPEM, err
}

// usable reports whether cert chains to this CA for the given usage and is
// not within the renewal window.
func (ca *CA) usable(cert *x509.Certificate, usage x509.ExtKeyUsage) bool {
	_, err := cert.Verify(x509.VerifyOptions{
		Roots:       ca.Pool(),
		KeyUsages:   []x509.ExtKeyUsage{usage},
		CurrentTime: ca.now(),
	})
	return err == nil && ca.now().Add(RenewBefore).Before(cert.NotAfter)
}

// NodeUser returns the user name a node authenticates as.
func NodeUser(nodeName string) string { return NodeUserPrefix + nodeName }

// ValidateNodeName checks a node name is a valid Kubernetes object name.
func ValidateNodeName(name string) error {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("invalid node name %q: %s", name, errs[0])
	}
	return nil
}

// SignNodeClientCSR signs a kubelet client certificate. The CSR must ask for
// exactly CN=system:node:<nodeName>, O=system:nodes and carry no SANs; the
// issued certificate is good for client authentication only. Anything else
// fails with an error wrapping ErrSubjectNotAllowed.
func (ca *CA) SignNodeClientCSR(csrPEM []byte, nodeName string) ([]byte, error) {
	if err := ValidateNodeName(nodeName); err != nil {
		return nil, err
	}
	csr, err := ParseCSRPEM(csrPEM)
	if err != nil {
		return nil, err
	}
	want := NodeUser(nodeName)
	if csr.Subject.CommonName != want {
		return nil, fmt.Errorf("%w: CSR common name is %q, want %q", ErrSubjectNotAllowed, csr.Subject.CommonName, want)
	}
	if len(csr.Subject.Organization) != 1 || csr.Subject.Organization[0] != NodesGroup {
		return nil, fmt.Errorf("%w: CSR organizations are %q, want exactly [%q]", ErrSubjectNotAllowed, csr.Subject.Organization, NodesGroup)
	}
	if len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.EmailAddresses)+len(csr.URIs) > 0 {
		return nil, fmt.Errorf("%w: a node client CSR must not carry subject alternative names", ErrSubjectNotAllowed)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: CSR key is %T, want ECDSA", ErrSubjectNotAllowed, csr.PublicKey)
	}
	_, certPEM, err := ca.Issue(Leaf{
		CommonName:   want,
		Organization: []string{NodesGroup},
		Usage:        x509.ExtKeyUsageClientAuth,
	}, pub)
	return certPEM, err
}

// IssueKubeletServing issues a serving certificate (and key) for a kubelet's
// HTTPS port. nodeName is added as a DNS SAN.
func (ca *CA) IssueKubeletServing(nodeName string, hosts []string) (certPEM, keyPEM []byte, err error) {
	if err := ValidateNodeName(nodeName); err != nil {
		return nil, nil, err
	}
	return ca.IssueWithKey(Leaf{
		CommonName:   NodeUser(nodeName),
		Organization: []string{NodesGroup},
		Hosts:        append([]string{nodeName}, hosts...),
		Usage:        x509.ExtKeyUsageServerAuth,
	})
}
