package authn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// ES256 compact JWS (RFC 7515/7518): header.payload.signature, each
// base64url without padding; the signature is r||s, 32 bytes each.

var b64 = base64.RawURLEncoding

type jwsHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid,omitempty"`
}

// keyID is upstream's kid: the base64url SHA-256 of the public key's
// PKIX DER, so verifiers can pick a key when several are trusted.
func keyID(pub *ecdsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return b64.EncodeToString(sum[:])
}

// signES256 returns the compact JWS of claims.
func signES256(key *ecdsa.PrivateKey, claims any) (string, error) {
	hdr, err := json.Marshal(jwsHeader{Alg: "ES256", Kid: keyID(&key.PublicKey)})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signing := b64.EncodeToString(hdr) + "." + b64.EncodeToString(payload)
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + b64.EncodeToString(sig), nil
}

// splitJWS decodes a compact JWS without verifying it.
func splitJWS(token string) (hdr jwsHeader, payload, sig []byte, signing string, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return hdr, nil, nil, "", errors.New("not a compact JWS")
	}
	h, err := b64.DecodeString(parts[0])
	if err != nil {
		return hdr, nil, nil, "", fmt.Errorf("JWS header: %w", err)
	}
	if err := json.Unmarshal(h, &hdr); err != nil {
		return hdr, nil, nil, "", fmt.Errorf("JWS header: %w", err)
	}
	if payload, err = b64.DecodeString(parts[1]); err != nil {
		return hdr, nil, nil, "", fmt.Errorf("JWS payload: %w", err)
	}
	if sig, err = b64.DecodeString(parts[2]); err != nil {
		return hdr, nil, nil, "", fmt.Errorf("JWS signature: %w", err)
	}
	return hdr, payload, sig, parts[0] + "." + parts[1], nil
}

// verifyES256 checks the signature over signing; only ES256 is accepted,
// so a token cannot pick a weaker algorithm ("none", HS256).
func verifyES256(pub *ecdsa.PublicKey, hdr jwsHeader, signing string, sig []byte) error {
	if hdr.Alg != "ES256" || pub.Curve != elliptic.P256() {
		return fmt.Errorf("unsupported JWS algorithm %q", hdr.Alg)
	}
	if len(sig) != 64 {
		return errors.New("invalid signature")
	}
	sum := sha256.Sum256([]byte(signing))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub, sum[:], r, s) {
		return errors.New("invalid signature")
	}
	return nil
}
