package status

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestWrite(t *testing.T) {
	rec := httptest.NewRecorder()
	Write(rec, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "p", errBoom{}))
	if rec.Code != 403 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("code %d content-type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var st metav1.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	want := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Reason: metav1.StatusReasonForbidden, Code: 403,
		Message: `pods "p" is forbidden: boom`,
	}
	if st.TypeMeta != want.TypeMeta || st.Status != want.Status || st.Reason != want.Reason || st.Code != want.Code || st.Message != want.Message {
		t.Errorf("got %+v\nwant %+v", st, want)
	}
	if st.Details == nil || st.Details.Name != "p" || st.Details.Kind != "pods" {
		t.Errorf("details %+v", st.Details)
	}
}

type errBoom struct{}

func (errBoom) Error() string { return "boom" }
