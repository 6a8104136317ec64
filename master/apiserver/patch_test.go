package apiserver

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/hoist-project/hoist/master/registry"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestPatchPreconditions: a resourceVersion left in the object by any patch
// type must be the current one (409 otherwise), a uid must not change (422).
func TestPatchPreconditions(t *testing.T) {
	res := &registry.Resource{GroupVersion: schema.GroupVersion{Version: "v1"}, Kind: "Pod", Name: "pods", Namespaced: true}
	cur := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1", ResourceVersion: "7"}}
	orig, err := json.Marshal(cur)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		ct, patch string
		code      int32 // 0: applies
	}{
		{"application/merge-patch+json", `{"metadata":{"labels":{"a":"b"}}}`, 0},
		{"application/merge-patch+json", `{"metadata":{"resourceVersion":"7","labels":{"a":"b"}}}`, 0},
		{"application/merge-patch+json", `{"metadata":{"resourceVersion":"1"}}`, http.StatusConflict},
		{"application/merge-patch+json", `{"metadata":{"resourceVersion":null}}`, 0}, // unconditional
		{"application/strategic-merge-patch+json", `{"metadata":{"resourceVersion":"6"}}`, http.StatusConflict},
		{"application/strategic-merge-patch+json", `{"metadata":{"resourceVersion":"7"}}`, 0},
		{"application/json-patch+json", `[{"op":"replace","path":"/metadata/resourceVersion","value":"8"}]`, http.StatusConflict},
		{"application/json-patch+json", `[{"op":"remove","path":"/metadata/resourceVersion"}]`, 0},
		{"application/merge-patch+json", `{"metadata":{"uid":"u1"}}`, 0},
		{"application/merge-patch+json", `{"metadata":{"uid":"u2"}}`, http.StatusUnprocessableEntity},
		{"application/strategic-merge-patch+json", `{"metadata":{"uid":"u2"}}`, http.StatusUnprocessableEntity},
	}
	for _, c := range cases {
		out, err := applyPatch(c.ct, orig, []byte(c.patch), &corev1.Pod{})
		if err != nil {
			t.Fatalf("%s %s: %v", c.ct, c.patch, err)
		}
		var patched corev1.Pod
		if err := json.Unmarshal(out, &patched); err != nil {
			t.Fatal(err)
		}
		err = patchPreconditions(res, cur, &patched)
		switch {
		case c.code == 0 && err != nil:
			t.Errorf("%s %s: %v, want it applied", c.ct, c.patch, err)
		case c.code != 0 && (err == nil || err.(apierrors.APIStatus).Status().Code != c.code):
			t.Errorf("%s %s: %v, want HTTP %d", c.ct, c.patch, err, c.code)
		}
		if c.code == http.StatusConflict && err.Error() != `Operation cannot be fulfilled on pods "p": the object has been modified; please apply your changes to the latest version and try again` {
			t.Errorf("conflict message: %v", err)
		}
	}
}
