package registry

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
)

// TestDecode covers the one-pass decode and the errors that fall back to
// parsing the body's type alone.
func TestDecode(t *testing.T) {
	pod := corev1.SchemeGroupVersion.WithKind("Pod")
	cases := []struct {
		name, body, err string
		strict          int
	}{
		{name: "pod", body: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"}}`},
		{name: "no apiVersion", body: `{"kind":"Pod","metadata":{"name":"a"}}`},
		{name: "unknown field", body: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"bogus":1}`, strict: 1},
		{name: "invalid JSON", body: `{"apiVersion":"v1",`, err: "invalid JSON"},
		{name: "no kind", body: `{"apiVersion":"v1","metadata":{"name":"a"}}`, err: "Object 'Kind' is missing"},
		{name: "other kind", body: `{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}}`, err: "is v1 Service, this endpoint expects v1 Pod"},
		{name: "other version", body: `{"apiVersion":"apps/v1","kind":"Pod"}`, err: "is apps/v1 Pod"},
		{name: "other kind, bad field type", body: `{"apiVersion":"v1","kind":"Service","spec":{"containers":3}}`, err: "is v1 Service"},
		{name: "bad field type", body: `{"apiVersion":"v1","kind":"Pod","spec":{"containers":3}}`, err: "cannot decode Pod"},
	}
	for _, c := range cases {
		d, err := Decode(scheme.Scheme, pod, []byte(c.body))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one containing %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		p, ok := d.Obj.(*corev1.Pod)
		if !ok || p.Name != "a" || p.Kind != "Pod" || p.APIVersion != "v1" {
			t.Errorf("%s: decoded %#v", c.name, d.Obj)
		}
		if len(d.Strict) != c.strict {
			t.Errorf("%s: strict errors %q, want %d", c.name, d.Strict, c.strict)
		}
	}
}
