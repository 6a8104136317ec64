package registry

import (
	"bytes"
	"encoding/json"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestEncodeOnce: the one encoding gives exactly what encodeForStorage
// stores and what json.Marshal returns once the revision is set.
func TestEncodeOnce(t *testing.T) {
	now := metav1.Now()
	cases := []struct {
		obj    runtime.Object
		gvk    schema.GroupVersionKind
		wantOK bool
	}{
		{&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1", CreationTimestamp: now,
			Labels: map[string]string{"app": "a"}, Annotations: map[string]string{"resourceVersion": "x"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}},
			corev1.SchemeGroupVersion.WithKind("Pod"), true},
		// No creationTimestamp: the field after resourceVersion is another.
		{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "n"}}, corev1.SchemeGroupVersion.WithKind("Namespace"), true},
		{&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "ns", ResourceVersion: "7", Generation: 1}},
			appsv1.SchemeGroupVersion.WithKind("Deployment"), true},
		// The placeholder's text in user data: the usual encoding is used.
		{&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns",
			Annotations: map[string]string{"resourceVersion": rvPlaceholder}}},
			corev1.SchemeGroupVersion.WithKind("ConfigMap"), false},
	}
	for _, c := range cases {
		acc, _ := meta.Accessor(c.obj)
		before := acc.GetResourceVersion()
		enc, ok, err := encodeOnce(c.obj, c.gvk)
		if err != nil || ok != c.wantOK {
			t.Fatalf("%s: ok=%v err=%v, want ok=%v", c.gvk.Kind, ok, err, c.wantOK)
		}
		if acc.GetResourceVersion() != before {
			t.Fatalf("%s: resourceVersion left at %q", c.gvk.Kind, acc.GetResourceVersion())
		}
		if !ok {
			continue
		}
		want, err := encodeForStorage(c.obj, c.gvk)
		if err != nil {
			t.Fatal(err)
		}
		if got := enc.stored(); !bytes.Equal(got, want) {
			t.Errorf("%s stored:\n got %s\nwant %s", c.gvk.Kind, got, want)
		}
		acc.SetResourceVersion("12345")
		want, _ = json.Marshal(c.obj)
		if got := enc.withRV(12345); !bytes.Equal(got, want) {
			t.Errorf("%s response:\n got %s\nwant %s", c.gvk.Kind, got, want)
		}
	}
}
