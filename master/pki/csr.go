package pki

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
)

// NewNodeClientCSR builds the PEM CSR a kubelet sends to obtain its client
// certificate; the private key stays with the caller.
func NewNodeClientCSR(nodeName string, key *ecdsa.PrivateKey) ([]byte, error) {
	if err := ValidateNodeName(nodeName); err != nil {
		return nil, err
	}
	return NewCSR(pkix.Name{CommonName: NodeUser(nodeName), Organization: []string{NodesGroup}}, key)
}

// NewCSR builds a PEM certificate request for subject.
func NewCSR(subject pkix.Name, key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject}, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// ParseCSRPEM parses a PEM CSR and checks its self-signature.
func ParseCSRPEM(data []byte) (*x509.CertificateRequest, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("no PEM CERTIFICATE REQUEST block found")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("CSR signature: %w", err)
	}
	return csr, nil
}
