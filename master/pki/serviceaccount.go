package pki

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ServiceAccountKeyFile (under <data-dir>/pki) holds the ECDSA P-256 key
// that signs service account tokens.
const ServiceAccountKeyFile = "service-account.key"

// EnsureServiceAccountKey loads the service account signing key from
// <dataDir>/pki, creating it on first start. It is never replaced: every
// token issued so far verifies against it.
func EnsureServiceAccountKey(dataDir string) (*ecdsa.PrivateKey, error) {
	dir := filepath.Join(dataDir, "pki")
	path := filepath.Join(dir, ServiceAccountKeyFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		key, err := ParseKeyPEM(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return key, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	keyPEM, err := EncodeKeyPEM(key)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return key, nil
}
