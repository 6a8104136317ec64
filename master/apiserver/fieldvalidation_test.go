package apiserver

import (
	"net/http/httptest"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

func TestFieldValidation(t *testing.T) {
	unknown := []string{`unknown field "spec.replicaz"`, `duplicate field "replicas"`}
	const prefix = `Deployment in version "v1" cannot be handled as a Deployment: `
	cases := []struct {
		method, query string
		strict        []string
		code          int32 // 0: accepted
		msg, warning  string
	}{
		{"POST", "", unknown, 0, "", `299 - "unknown field \"spec.replicaz\""`},
		{"POST", "fieldValidation=Warn", unknown, 0, "", `299 - "unknown field \"spec.replicaz\""`},
		{"POST", "fieldValidation=Ignore", unknown, 0, "", ""},
		{"POST", "fieldValidation=Strict", nil, 0, "", ""},
		{"POST", "fieldValidation=Strict", unknown, 400,
			prefix + `strict decoding error: unknown field "spec.replicaz", duplicate field "replicas"`, ""},
		// A bad directive is refused even when the body is clean.
		{"POST", "fieldValidation=strict", nil, 422,
			`CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "strict": supported values: "Ignore", "Strict", "Warn"`, ""},
		{"PATCH", "fieldValidation=Nope", unknown, 422, `PatchOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Nope"`, ""},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		h := &handler{r: httptest.NewRequest(c.method, "/apis/apps/v1/namespaces/default/deployments?"+c.query, nil), w: rec}
		err := h.fieldValidation(c.strict, prefix)
		if c.code == 0 {
			if err != nil {
				t.Errorf("%s ?%s: %v", c.method, c.query, err)
			}
		} else if se, ok := err.(apierrors.APIStatus); !ok || se.Status().Code != c.code || !strings.HasPrefix(se.Status().Message, c.msg) {
			t.Errorf("%s ?%s: got %v, want HTTP %d %q", c.method, c.query, err, c.code, c.msg)
		}
		if got := rec.Header().Get("Warning"); got != c.warning {
			t.Errorf("%s ?%s: Warning %q, want %q", c.method, c.query, got, c.warning)
		}
	}
}
