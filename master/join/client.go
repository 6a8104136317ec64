package join

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hoist-project/hoist/master/pki"
)

// KubeconfigFile is what Join writes into Config.Dir.
const KubeconfigFile = "kubelet.kubeconfig"

var hashPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// Config says which master to join and as whom.
type Config struct {
	// Server is the API server URL, e.g. https://192.0.2.1:6443.
	Server string
	// Token is the master's join token.
	Token string
	// CACertHash pins the cluster CA: "sha256:<hex>" of its SubjectPublicKeyInfo.
	CACertHash string
	NodeName   string
	// Dir receives kubelet.kubeconfig (created 0700 if missing).
	Dir string
	// Kubeconfig, when set, is the file written instead of
	// <Dir>/kubelet.kubeconfig (its directory is created 0700 if missing).
	Kubeconfig string
	// Timeout bounds each HTTP exchange (30s when zero).
	Timeout time.Duration
}

func (c Config) validate() error {
	u, err := url.Parse(c.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("join: server %q must be an https URL like https://192.0.2.1:6443", c.Server)
	}
	if err := ValidateToken(c.Token); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if !hashPattern.MatchString(strings.ToLower(c.CACertHash)) {
		return fmt.Errorf("join: CA cert hash %q must look like sha256:<64 hex digits> (the master prints it; joining without a pin is not supported)", c.CACertHash)
	}
	if err := pki.ValidateNodeName(c.NodeName); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if c.Dir == "" && c.Kubeconfig == "" {
		return fmt.Errorf("join: no directory for %s", KubeconfigFile)
	}
	return nil
}

// Join obtains a client certificate for cfg.NodeName and writes
// <Dir>/kubelet.kubeconfig (or cfg.Kubeconfig); it returns that path. The
// private key is made here and never leaves the node.
func Join(ctx context.Context, cfg Config) (string, error) {
	if err := cfg.validate(); err != nil {
		return "", err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	server := strings.TrimSuffix(cfg.Server, "/")
	ca, err := fetchPinnedCA(ctx, cfg, server)
	if err != nil {
		return "", err
	}
	key, err := pki.NewKey()
	if err != nil {
		return "", err
	}
	csr, err := pki.NewNodeClientCSR(cfg.NodeName, key)
	if err != nil {
		return "", err
	}
	certPEM, err := requestCertificate(ctx, cfg, server, ca, csr)
	if err != nil {
		return "", err
	}
	cert, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		return "", fmt.Errorf("join: certificate from %s: %w", server, err)
	}
	pub, _ := cert.PublicKey.(*ecdsa.PublicKey)
	if pub == nil || !pub.Equal(&key.PublicKey) || cert.Subject.CommonName != pki.NodeUser(cfg.NodeName) {
		return "", fmt.Errorf("join: %s returned a certificate for %q that does not match the request", server, cert.Subject.CommonName)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "", fmt.Errorf("join: certificate from %s does not verify against the pinned CA: %w", server, err)
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return "", err
	}
	path := cfg.Kubeconfig
	if path == "" {
		path = filepath.Join(cfg.Dir, KubeconfigFile)
	}
	_, err = pki.WriteKubeconfig(path, pki.Kubeconfig{
		Server:      server,
		ClusterName: pki.DefaultClusterName,
		UserName:    pki.NodeUser(cfg.NodeName),
		CAPEM:       pki.EncodeCertPEM(ca.Raw),
		CertPEM:     certPEM,
		KeyPEM:      keyPEM,
	})
	if err != nil {
		return "", err
	}
	return path, nil
}

func pool(ca *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca)
	return p
}

// fetchPinnedCA downloads the CA without verifying the server (the node
// cannot yet) and accepts it only if it matches the pinned hash.
func fetchPinnedCA(ctx context.Context, cfg Config, server string) (*x509.Certificate, error) {
	client := &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // verified by hash below
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+CACertificatePath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("join: fetch cluster CA from %s: %w", server, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRequestBody))
	if err != nil {
		return nil, fmt.Errorf("join: fetch cluster CA from %s: %w", server, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("join: fetch cluster CA from %s: %s", server, statusMessage(resp, body))
	}
	ca, err := pki.ParseCertPEM(body)
	if err != nil {
		return nil, fmt.Errorf("join: %s served no CA certificate: %w", server, err)
	}
	got, want := pki.CACertHash(ca), strings.ToLower(cfg.CACertHash)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return nil, fmt.Errorf("join: refusing %s: its CA certificate hash is %s but the pinned hash is %s; check the hash the master printed, or that this is the right master", server, got, want)
	}
	if !ca.IsCA {
		return nil, fmt.Errorf("join: %s served a certificate that is not a CA", server)
	}
	return ca, nil
}

// requestCertificate sends the CSR over a connection verified against ca.
func requestCertificate(ctx context.Context, cfg Config, server string, ca *x509.Certificate, csr []byte) ([]byte, error) {
	body, err := json.Marshal(NodeClientCertificateRequest{
		APIVersion: APIVersion, Kind: "NodeClientCertificateRequest", NodeName: cfg.NodeName, CSR: string(csr),
	})
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool(ca), MinVersion: tls.VersionTLS12},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, server+NodeClientCertificatesPath, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+cfg.Token)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("join: request certificate from %s: %w", server, err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxRequestBody))
	if err != nil {
		return nil, fmt.Errorf("join: request certificate from %s: %w", server, err)
	}
	switch resp.StatusCode {
	case http.StatusCreated, http.StatusOK:
	case http.StatusUnauthorized:
		return nil, fmt.Errorf("join: %s rejected the join token (%s)", server, statusMessage(resp, respBody))
	default:
		return nil, fmt.Errorf("join: %s refused the certificate request: %s", server, statusMessage(resp, respBody))
	}
	var out NodeClientCertificate
	if err := json.Unmarshal(respBody, &out); err != nil {
		return nil, fmt.Errorf("join: malformed answer from %s: %w", server, err)
	}
	return []byte(out.Certificate), nil
}

// statusMessage extracts a Kubernetes Status message, or the HTTP status.
func statusMessage(resp *http.Response, body []byte) string {
	var st metav1.Status
	if json.Unmarshal(body, &st) == nil && st.Message != "" {
		return fmt.Sprintf("%s (HTTP %d)", st.Message, resp.StatusCode)
	}
	return resp.Status
}
