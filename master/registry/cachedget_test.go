package registry

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestGetMemo(t *testing.T) {
	var m getMemo
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a", ResourceVersion: "5"}}
	m.put("/registry/namespaces/a", 5, ns)
	ns.Name = "changed after put"
	got, ok := m.get("/registry/namespaces/a", 5)
	if !ok || got.(*corev1.Namespace).Name != "a" {
		t.Fatalf("get at the kept revision: %v %v", got, ok)
	}
	got.(*corev1.Namespace).Name = "changed by a caller"
	if again, _ := m.get("/registry/namespaces/a", 5); again.(*corev1.Namespace).Name != "a" {
		t.Fatalf("a caller's change reached the memo: %v", again)
	}
	if _, ok := m.get("/registry/namespaces/a", 6); ok {
		t.Fatal("get at another revision hit")
	}
	if _, ok := m.get("/registry/namespaces/b", 5); ok {
		t.Fatal("get of another key hit")
	}
	for i := range getMemoSize + 1 {
		m.put(fmt.Sprintf("/registry/namespaces/n%d", i), 1, ns)
	}
	if len(m.objs) > getMemoSize {
		t.Fatalf("memo holds %d objects, bound %d", len(m.objs), getMemoSize)
	}
}
