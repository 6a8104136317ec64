package join

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// TokenFile is the join token's file name in the data dir.
const TokenFile = "join-token"

// tokenPattern is kubeadm's bootstrap token format: <id>.<secret>.
var tokenPattern = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)

const tokenAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// ValidateToken checks the kubeadm-style format [a-z0-9]{6}.[a-z0-9]{16}.
func ValidateToken(token string) error {
	if !tokenPattern.MatchString(token) {
		return fmt.Errorf("join token %q is malformed: want 6 and 16 characters of [a-z0-9] separated by a dot, e.g. abcdef.0123456789abcdef", token)
	}
	return nil
}

// GenerateToken returns a fresh random token (about 113 bits of entropy).
func GenerateToken() (string, error) {
	const n = 22
	// Bytes >= 252 are rejected so every character is equally likely (252 = 7*36).
	out := make([]byte, 0, n+1)
	buf := make([]byte, 32)
	for len(out) < n+1 {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, c := range buf {
			if len(out) == 6 {
				out = append(out, '.')
			}
			if len(out) == n+1 {
				break
			}
			if c < 252 {
				out = append(out, tokenAlphabet[int(c)%len(tokenAlphabet)])
			}
		}
	}
	return string(out), nil
}

// EnsureToken returns the token in <dataDir>/join-token, creating the file
// (0600) with a fresh token on first start.
func EnsureToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, TokenFile)
	data, err := os.ReadFile(path)
	if err == nil {
		token := strings.TrimSpace(string(data))
		if err := ValidateToken(token); err != nil {
			return "", fmt.Errorf("%s: %w; delete the file to generate a new token", path, err)
		}
		return token, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	token, err := GenerateToken()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", err
	}
	// O_EXCL: two masters racing on one data dir must not swap tokens under each other.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return token, nil
}

// Instructions is the text the master prints so an operator can join a
// node: the three values, then the command that uses them.
func Instructions(server, token, caHash string) string {
	return fmt.Sprintf(`To join a node to this cluster, give its kubelet:
  join server:         %[1]s
  join token:          %[2]s
  CA cert hash (pin):  %[3]s
On the node, run:
  hoist kubelet --join-server %[1]s --join-token %[2]s --join-ca-cert-hash %[3]s
The token is also in the master's data dir (%[4]s); keep it secret.
`, server, token, caHash, TokenFile)
}
