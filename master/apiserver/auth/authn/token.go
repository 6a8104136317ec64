package authn

import (
	"crypto/sha256"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/hoist-project/hoist/master/apiserver/auth/user"
)

// ErrInvalidToken is returned for a bearer token no authenticator knows.
var ErrInvalidToken = errors.New("invalid bearer token")

// BearerToken extracts the token of an "Authorization: Bearer <token>" header.
func BearerToken(r *http.Request) (string, bool) {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// TokenFile authenticates static bearer tokens, loaded once from a CSV file
// in the upstream --token-auth-file format:
//
//	token,user,uid,"group1,group2"
//
// Blank lines and lines starting with '#' are ignored.
type TokenFile struct {
	// tokens is keyed by the token's SHA-256 so lookups do not compare
	// secrets byte by byte.
	tokens map[[sha256.Size]byte]user.Info
}

// LoadTokenFile reads path.
func LoadTokenFile(path string) (*TokenFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	tf, err := ParseTokens(f)
	if err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	return tf, nil
}

// ParseTokens reads token CSV from r.
func ParseTokens(r io.Reader) (*TokenFile, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	tf := &TokenFile{tokens: map[[sha256.Size]byte]user.Info{}}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return tf, nil
		}
		if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		if len(rec) < 3 {
			return nil, fmt.Errorf("line %d: want token,user,uid[,\"group1,group2\"], got %d fields", line, len(rec))
		}
		if rec[0] == "" || rec[1] == "" {
			return nil, fmt.Errorf("line %d: token and user must not be empty", line)
		}
		key := sha256.Sum256([]byte(rec[0]))
		if _, dup := tf.tokens[key]; dup {
			return nil, fmt.Errorf("line %d: duplicate token for user %q", line, rec[1])
		}
		info := user.Info{Name: rec[1], UID: rec[2]}
		if len(rec) > 3 {
			for _, g := range strings.Split(rec[3], ",") {
				if g = strings.TrimSpace(g); g != "" {
					info.Groups = append(info.Groups, g)
				}
			}
		}
		tf.tokens[key] = info
	}
}

func (tf *TokenFile) AuthenticateRequest(r *http.Request) (user.Info, bool, error) {
	token, ok := BearerToken(r)
	if !ok {
		return user.Info{}, false, nil
	}
	info, ok := tf.tokens[sha256.Sum256([]byte(token))]
	if !ok {
		return user.Info{}, false, ErrInvalidToken
	}
	return info, true, nil
}
