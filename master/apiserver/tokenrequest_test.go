package apiserver

import (
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
)

func TestValidateTokenRequest(t *testing.T) {
	secs := func(n int64) *int64 { return &n }
	pod := func(kind, version, name string) *authenticationv1.BoundObjectReference {
		return &authenticationv1.BoundObjectReference{Kind: kind, APIVersion: version, Name: name}
	}
	cases := []struct {
		name string
		spec authenticationv1.TokenRequestSpec
		want string // "" for valid
	}{
		{"default lifetime", authenticationv1.TokenRequestSpec{ExpirationSeconds: secs(defaultTokenSeconds)}, ""},
		{"ten minutes", authenticationv1.TokenRequestSpec{ExpirationSeconds: secs(600)}, ""},
		{"too short", authenticationv1.TokenRequestSpec{ExpirationSeconds: secs(599)}, "less than 10 minutes"},
		{"too long", authenticationv1.TokenRequestSpec{ExpirationSeconds: secs(1 << 33)}, "spec.expirationSeconds"},
		{"bound pod", authenticationv1.TokenRequestSpec{ExpirationSeconds: secs(3600), BoundObjectRef: pod("Pod", "v1", "web")}, ""},
		{"bound secret", authenticationv1.TokenRequestSpec{ExpirationSeconds: secs(3600), BoundObjectRef: pod("Secret", "v1", "s")}, "boundObjectRef.kind"},
		{"bound pod without name", authenticationv1.TokenRequestSpec{ExpirationSeconds: secs(3600), BoundObjectRef: pod("Pod", "v1", "")}, "boundObjectRef.name"},
	}
	for _, c := range cases {
		errs := validateTokenRequest(&authenticationv1.TokenRequest{Spec: c.spec})
		got := errs.ToAggregate()
		switch {
		case c.want == "" && got != nil:
			t.Errorf("%s: unexpected error %v", c.name, got)
		case c.want != "" && (got == nil || !strings.Contains(got.Error(), c.want)):
			t.Errorf("%s: got %v, want an error containing %q", c.name, got, c.want)
		}
	}
}
