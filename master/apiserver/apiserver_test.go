package apiserver

import (
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

func TestNegotiate(t *testing.T) {
	cases := []struct {
		accept string
		want   format
		ok     bool
	}{
		{"", format{}, true},
		{"application/json", format{}, true},
		{"application/yaml", format{yaml: true}, true},
		{"application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json", format{table: true}, true},
		{"application/vnd.kubernetes.protobuf,application/json", format{}, true},
		{"application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json", format{}, true},
		{"application/json;as=Table;v=v9;g=meta.k8s.io", format{}, false},
		{"application/vnd.kubernetes.protobuf", format{}, false},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/api/v1/pods", nil)
		if c.accept != "" {
			r.Header.Set("Accept", c.accept)
		}
		got, ok := negotiate(r)
		if got != c.want || ok != c.ok {
			t.Errorf("Accept %q: got %+v %v, want %+v %v", c.accept, got, ok, c.want, c.ok)
		}
	}
}

func TestApplyPatch(t *testing.T) {
	orig := []byte(`{"spec":{"containers":[{"name":"a","image":"x:1"},{"name":"b","image":"y:1"}]}}`)
	cases := []struct {
		ct, patch, want string
		code            int32
	}{
		// Strategic merge merges containers by name.
		{"application/strategic-merge-patch+json", `{"spec":{"containers":[{"name":"b","image":"y:2"}]}}`,
			`{"image":"x:1","name":"a"},{"image":"y:2","name":"b"}`, 0},
		// Merge patch replaces the list.
		{"application/merge-patch+json", `{"spec":{"containers":[{"name":"b","image":"y:2"}]}}`,
			`"containers":[{"image":"y:2","name":"b"}]`, 0},
		{"application/json-patch+json", `[{"op":"replace","path":"/spec/containers/0/image","value":"x:9"}]`, `"image":"x:9"`, 0},
		{"application/json-patch+json", `[{"op":"test","path":"/spec/containers/0/image","value":"nope"}]`, "", 422},
		{"application/json-patch+json", `not json`, "", 400},
		{"application/apply-patch+yaml", `{}`, "", 415},
		{"text/plain", `{}`, "", 415},
	}
	for _, c := range cases {
		out, err := applyPatch(c.ct, orig, []byte(c.patch), &corev1.Pod{})
		if c.code != 0 {
			if se, ok := err.(apierrors.APIStatus); !ok || se.Status().Code != c.code {
				t.Errorf("%s %s: got %v, want HTTP %d", c.ct, c.patch, err, c.code)
			}
			continue
		}
		if err != nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%s %s: got %s %v, want it to contain %s", c.ct, c.patch, out, err, c.want)
		}
	}
}
