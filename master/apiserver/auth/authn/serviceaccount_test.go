package authn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// objects is a LiveObjects over a map "resource/ns/name" -> uid.
type objects map[string]string

func (o objects) Live(_ context.Context, resource, ns, name, uid string) (bool, error) {
	got, ok := o[resource+"/"+ns+"/"+name]
	return ok && got == uid, nil
}

type saFixture struct {
	issuer *Issuer
	authn  *ServiceAccountTokens
	objs   objects
	now    time.Time
}

func newSAFixture(t *testing.T) *saFixture {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &saFixture{objs: objects{"serviceaccounts/ns1/default": "sa-uid-1", "pods/ns1/web": "pod-uid-1"},
		now: time.Unix(1_800_000_000, 0)}
	clock := func() time.Time { return f.now }
	aud := []string{DefaultServiceAccountIssuer}
	f.issuer = &Issuer{Key: key, Issuer: DefaultServiceAccountIssuer, Audiences: aud, Now: clock}
	f.authn = &ServiceAccountTokens{Key: &key.PublicKey, Issuer: DefaultServiceAccountIssuer, Audiences: aud, Objects: f.objs, Now: clock}
	return f
}

func (f *saFixture) issue(t *testing.T, spec TokenSpec) string {
	t.Helper()
	if spec.Namespace == "" {
		spec.Namespace, spec.ServiceAccount = "ns1", ObjectRef{Name: "default", UID: "sa-uid-1"}
	}
	if spec.Audiences == nil {
		spec.Audiences = f.issuer.Audiences
	}
	if spec.TTL == 0 {
		spec.TTL = time.Hour
	}
	tok, exp, err := f.issuer.Issue(spec)
	if err != nil {
		t.Fatal(err)
	}
	if want := f.now.Add(spec.TTL); !exp.Equal(want) {
		t.Fatalf("expiry %v, want %v", exp, want)
	}
	return tok
}

func TestServiceAccountTokenAuthenticates(t *testing.T) {
	f := newSAFixture(t)
	tok := f.issue(t, TokenSpec{})
	u, ok, err := f.authn.AuthenticateRequest(withBearer(tok))
	if err != nil || !ok {
		t.Fatalf("valid token: ok=%v err=%v", ok, err)
	}
	if u.Name != "system:serviceaccount:ns1:default" || u.UID != "sa-uid-1" ||
		!slices.Equal(u.Groups, []string{"system:serviceaccounts", "system:serviceaccounts:ns1", "system:authenticated"}) {
		t.Fatalf("user %+v", u)
	}
	// The claims are upstream's.
	_, payload, _, _, err := splitJWS(tok)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	k8s, _ := c["kubernetes.io"].(map[string]any)
	sa, _ := k8s["serviceaccount"].(map[string]any)
	if c["iss"] != DefaultServiceAccountIssuer || c["sub"] != "system:serviceaccount:ns1:default" ||
		c["exp"] != float64(f.now.Add(time.Hour).Unix()) || c["iat"] != float64(f.now.Unix()) || c["nbf"] != float64(f.now.Unix()) ||
		k8s["namespace"] != "ns1" || sa["name"] != "default" || sa["uid"] != "sa-uid-1" || k8s["pod"] != nil {
		t.Fatalf("claims %s", payload)
	}
}

func TestServiceAccountTokenRejected(t *testing.T) {
	cases := []struct {
		name   string
		spec   TokenSpec
		change func(f *saFixture, tok string) string
		want   string
	}{
		{name: "bad signature", change: func(_ *saFixture, tok string) string {
			parts := strings.Split(tok, ".")
			other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			forged, _ := signES256(other, json.RawMessage(mustDecode(parts[1])))
			return parts[0] + "." + parts[1] + "." + strings.Split(forged, ".")[2]
		}, want: "invalid signature"},
		{name: "alg none", change: func(_ *saFixture, tok string) string {
			parts := strings.Split(tok, ".")
			return b64.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + "."
		}, want: "unsupported JWS algorithm"},
		{name: "expired", change: func(f *saFixture, tok string) string {
			f.now = f.now.Add(time.Hour + clockLeeway + time.Second)
			return tok
		}, want: "expired"},
		{name: "not yet valid", change: func(f *saFixture, tok string) string {
			f.now = f.now.Add(-clockLeeway - time.Second)
			return tok
		}, want: "not valid yet"},
		{name: "wrong audience", spec: TokenSpec{Audiences: []string{"vault"}}, want: "audiences"},
		{name: "deleted service account", change: func(f *saFixture, tok string) string {
			delete(f.objs, "serviceaccounts/ns1/default")
			return tok
		}, want: "no longer exists"},
		{name: "recreated service account", change: func(f *saFixture, tok string) string {
			f.objs["serviceaccounts/ns1/default"] = "sa-uid-2"
			return tok
		}, want: "no longer exists"},
		{name: "bound pod deleted", spec: TokenSpec{Pod: &ObjectRef{Name: "web", UID: "pod-uid-1"}}, change: func(f *saFixture, tok string) string {
			delete(f.objs, "pods/ns1/web")
			return tok
		}, want: "pods ns1/web"},
		{name: "bound pod recreated", spec: TokenSpec{Pod: &ObjectRef{Name: "web", UID: "pod-uid-1"}}, change: func(f *saFixture, tok string) string {
			f.objs["pods/ns1/web"] = "pod-uid-2"
			return tok
		}, want: "pods ns1/web"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newSAFixture(t)
			tok := f.issue(t, c.spec)
			if c.change != nil {
				tok = c.change(f, tok)
			}
			u, ok, err := f.authn.AuthenticateRequest(withBearer(tok))
			if ok || err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got user %+v ok=%v err=%v, want an error containing %q", u, ok, err, c.want)
			}
		})
	}
}

func TestServiceAccountTokenBoundPod(t *testing.T) {
	f := newSAFixture(t)
	tok := f.issue(t, TokenSpec{Pod: &ObjectRef{Name: "web", UID: "pod-uid-1"}})
	if u, ok, err := f.authn.AuthenticateRequest(withBearer(tok)); !ok || err != nil || u.Name != "system:serviceaccount:ns1:default" {
		t.Fatalf("bound token while the pod lives: %+v ok=%v err=%v", u, ok, err)
	}
}

// Tokens that are not this issuer's JWTs are left to other authenticators.
func TestServiceAccountTokenIgnoresOthers(t *testing.T) {
	f := newSAFixture(t)
	other := &Issuer{Key: f.issuer.Key, Issuer: "https://elsewhere", Audiences: f.issuer.Audiences, Now: f.issuer.Now}
	foreign, _, err := other.Issue(TokenSpec{Namespace: "ns1", ServiceAccount: ObjectRef{Name: "default", UID: "sa-uid-1"},
		Audiences: f.issuer.Audiences, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"", "static-token", "a.b.c", foreign} {
		if u, ok, err := f.authn.AuthenticateRequest(withBearer(tok)); ok || err != nil {
			t.Errorf("token %q: got %+v ok=%v err=%v, want no opinion", tok, u, ok, err)
		}
	}
}

func mustDecode(s string) []byte {
	b, err := b64.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
