// Package pki creates and maintains the master's certificate material in
// <data-dir>/pki: the cluster CA, the API server's serving certificate and
// the admin client certificate, plus the admin kubeconfig next to them. It
// also signs kubelet client CSRs and issues kubelet serving certificates.
//
// Ensure is safe to call on every start: it never replaces an existing CA and
// reissues a leaf only when it is missing, no longer chains to the CA, misses
// a requested SAN, or is within RenewBefore of expiry.
package pki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// File names under <data-dir>/pki.
const (
	CACertFile      = "ca.crt"
	CAKeyFile       = "ca.key"
	ServingCertFile = "apiserver.crt"
	ServingKeyFile  = "apiserver.key"
	AdminCertFile   = "admin.crt"
	AdminKeyFile    = "admin.key"
	// AdminKubeconfigFile lives in the data dir itself, not under pki/.
	AdminKubeconfigFile = "admin.kubeconfig"
)

// Defaults used when Config leaves a field empty.
const (
	DefaultServiceCIDR = "10.96.0.0/12"
	DefaultServer      = "https://127.0.0.1:6443"
	DefaultClusterName = "hoist"
)

// Config says where the material lives and what the serving cert must cover.
type Config struct {
	DataDir string
	// Hosts are extra serving-cert SANs: the node/host IPs and DNS names
	// clients use to reach the API server.
	Hosts []string
	// ServiceCIDR's first address (the "kubernetes" Service IP) is a SAN.
	ServiceCIDR string
	// AdminServer is the server URL written into admin.kubeconfig.
	AdminServer string
	// Now is the clock (time.Now when nil); tests move it forward.
	Now func() time.Time
}

// PKI is the loaded, up-to-date certificate material.
type PKI struct {
	Dir                 string
	CA                  *CA
	ServingCertPath     string
	ServingKeyPath      string
	AdminCertPath       string
	AdminKeyPath        string
	AdminKubeconfigPath string
}

// ServingHosts returns the SANs the API server certificate must carry.
func ServingHosts(cfg Config) ([]string, error) {
	cidr := cfg.ServiceCIDR
	if cidr == "" {
		cidr = DefaultServiceCIDR
	}
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("invalid service CIDR %q: %w", cidr, err)
	}
	hosts := []string{
		"localhost", "127.0.0.1",
		"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
		prefix.Masked().Addr().Next().String(),
	}
	return append(hosts, cfg.Hosts...), nil
}

// Ensure loads or creates everything under <DataDir>/pki and writes
// <DataDir>/admin.kubeconfig when its content changed.
func Ensure(cfg Config) (*PKI, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("pki: data dir is empty")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	server := cfg.AdminServer
	if server == "" {
		server = DefaultServer
	}
	hosts, err := ServingHosts(cfg)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.DataDir, "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	ca, err := loadOrCreateCA(dir, now)
	if err != nil {
		return nil, err
	}
	p := &PKI{
		Dir:                 dir,
		CA:                  ca,
		ServingCertPath:     filepath.Join(dir, ServingCertFile),
		ServingKeyPath:      filepath.Join(dir, ServingKeyFile),
		AdminCertPath:       filepath.Join(dir, AdminCertFile),
		AdminKeyPath:        filepath.Join(dir, AdminKeyFile),
		AdminKubeconfigPath: filepath.Join(cfg.DataDir, AdminKubeconfigFile),
	}
	serving := Leaf{CommonName: "kube-apiserver", Hosts: hosts, Usage: x509.ExtKeyUsageServerAuth}
	if _, err := ca.ensureLeaf(p.ServingCertPath, p.ServingKeyPath, serving); err != nil {
		return nil, err
	}
	admin := Leaf{CommonName: AdminUser, Organization: []string{MastersGroup}, Usage: x509.ExtKeyUsageClientAuth}
	adminPair, err := ca.ensureLeaf(p.AdminCertPath, p.AdminKeyPath, admin)
	if err != nil {
		return nil, err
	}
	_, err = WriteKubeconfig(p.AdminKubeconfigPath, Kubeconfig{
		Server:      server,
		ClusterName: DefaultClusterName,
		UserName:    AdminUser,
		CAPEM:       ca.CertPEM,
		CertPEM:     adminPair.certPEM,
		KeyPEM:      adminPair.keyPEM,
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

type pemPair struct{ certPEM, keyPEM []byte }

// ensureLeaf keeps the existing pair if it still fits l, else issues a new one.
func (ca *CA) ensureLeaf(certPath, keyPath string, l Leaf) (pemPair, error) {
	cert, key, ok, err := readPair(certPath, keyPath)
	if err == nil && ok && sameKey(cert, key) && ca.usable(cert, l.Usage) && coversHosts(cert, l.Hosts) {
		keyPEM, err := os.ReadFile(keyPath)
		return pemPair{EncodeCertPEM(cert.Raw), keyPEM}, err
	}
	// A corrupt or mismatched leaf is replaced: the CA can always reissue it.
	certPEM, keyPEM, err := ca.IssueWithKey(l)
	if err != nil {
		return pemPair{}, fmt.Errorf("issue %s: %w", certPath, err)
	}
	if err := WritePair(certPath, keyPath, certPEM, keyPEM); err != nil {
		return pemPair{}, err
	}
	return pemPair{certPEM, keyPEM}, nil
}

// ServerTLSConfig returns the API server's TLS configuration. Client
// certificates are requested but not verified in the handshake: the x509
// authenticator verifies them against the CA, so a bad certificate gets an
// HTTP 401 Status instead of an opaque handshake failure (as upstream does).
func (p *PKI) ServerTLSConfig() (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(p.ServingCertPath, p.ServingKeyPath)
	if err != nil {
		return nil, fmt.Errorf("load serving certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequestClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}
