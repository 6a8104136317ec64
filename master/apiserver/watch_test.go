package apiserver

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/hoist-project/hoist/master/registry"
	"github.com/hoist-project/hoist/master/storage"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// A shared event is framed byte for byte as the json.Encoder frames any
// other event, and its object is encoded once for every watcher.
func TestWriteSharedEvent(t *testing.T) {
	pod := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", ResourceVersion: "7", Annotations: map[string]string{"a": "<&>"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	var want bytes.Buffer
	if err := json.NewEncoder(&want).Encode(watchEvent{Type: watch.Modified, Object: pod}); err != nil {
		t.Fatal(err)
	}
	memo := &storage.Memo{}
	var first []byte
	for i := range 2 {
		var got bytes.Buffer
		so := registry.NewSharedObject(pod, memo)
		if err := writeSharedEvent(&got, watch.Modified, so); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("watcher %d got\n%s\nwant\n%s", i, got.String(), want.String())
		}
		data, _ := so.JSON()
		if i == 0 {
			first = data
		} else if &data[0] != &first[0] {
			t.Fatal("the second watcher encoded the object again")
		}
	}
}
