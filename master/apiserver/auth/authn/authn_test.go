package authn

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hoist-project/hoist/master/apiserver/auth/user"
)

const tokens = `# comment
tok-admin,admin,uid-1,"system:masters,ops"

tok-bob,bob,uid-2
`

func withBearer(tok string) *http.Request {
	r := httptest.NewRequest("GET", "/api", nil)
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return r
}

func TestTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.csv")
	if err := os.WriteFile(path, []byte(tokens), 0o600); err != nil {
		t.Fatal(err)
	}
	tf, err := LoadTokenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u, ok, err := tf.AuthenticateRequest(withBearer("tok-admin"))
	if err != nil || !ok || u.Name != "admin" || u.UID != "uid-1" || !slices.Equal(u.Groups, []string{"system:masters", "ops"}) {
		t.Errorf("admin token: %+v %v %v", u, ok, err)
	}
	if u, ok, err := tf.AuthenticateRequest(withBearer("tok-bob")); err != nil || !ok || u.Name != "bob" || len(u.Groups) != 0 {
		t.Errorf("bob token: %+v %v %v", u, ok, err)
	}
	if _, ok, err := tf.AuthenticateRequest(withBearer("nope")); ok || !errors.Is(err, ErrInvalidToken) {
		t.Errorf("bad token: ok=%v err=%v", ok, err)
	}
	if _, ok, err := tf.AuthenticateRequest(withBearer("")); ok || err != nil {
		t.Errorf("no token: ok=%v err=%v, want not-mine", ok, err)
	}
	basic := httptest.NewRequest("GET", "/", nil)
	basic.SetBasicAuth("u", "p")
	if _, ok, err := tf.AuthenticateRequest(basic); ok || err != nil {
		t.Errorf("basic auth: ok=%v err=%v, want not-mine", ok, err)
	}
}

func TestParseTokensRejectsBadLines(t *testing.T) {
	for _, in := range []string{"tok,user\n", ",user,uid\n", "a,u,1\na,v,2\n", "a,\"unterminated\n"} {
		if _, err := ParseTokens(strings.NewReader(in)); err == nil {
			t.Errorf("%q: accepted", in)
		}
	}
	if _, err := LoadTokenFile(filepath.Join(t.TempDir(), "missing.csv")); err == nil || !strings.Contains(err.Error(), "missing.csv") {
		t.Errorf("missing file error should name it: %v", err)
	}
}

type fixed struct {
	u   user.Info
	ok  bool
	err error
}

func (f fixed) AuthenticateRequest(*http.Request) (user.Info, bool, error) { return f.u, f.ok, f.err }

func TestUnion(t *testing.T) {
	r := withBearer("")
	bad := fixed{err: errors.New("bad cert")}
	none := fixed{}
	alice := fixed{u: user.Info{Name: "alice"}, ok: true}
	if u, ok, err := (Union{bad, alice}).AuthenticateRequest(r); !ok || err != nil || u.Name != "alice" {
		t.Errorf("later success: %v %v %v", u, ok, err)
	}
	if _, ok, err := (Union{none, bad}).AuthenticateRequest(r); ok || err == nil {
		t.Errorf("only failures: ok=%v err=%v", ok, err)
	}
	if _, ok, err := (Union{none, none}).AuthenticateRequest(r); ok || err != nil {
		t.Errorf("no credentials: ok=%v err=%v", ok, err)
	}
}
