package runtime

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestPodIndex(t *testing.T) {
	var x podIndex
	if _, ok := x.ids("a"); ok {
		t.Fatal("an index no listing has filled claims to be usable")
	}
	x.add("a", "c2") // created while the first listing runs
	x.merge(map[string]types.UID{"c1": "a", "s1": "b"})
	if ids, ok := x.ids("a"); !ok || !slices.Equal(ids, []string{"c1", "c2"}) {
		t.Fatalf("pod a = %v (usable %v), want [c1 c2]: a listing must not hide a container created meanwhile", ids, ok)
	}
	x.merge(map[string]types.UID{"s1": "b"}) // a later listing that missed c1 and c2
	if ids, _ := x.ids("a"); !slices.Equal(ids, []string{"c1", "c2"}) {
		t.Fatalf("pod a = %v after a listing without its containers, want them kept until deleted", ids)
	}
	x.remove("c1")
	x.remove("c2")
	x.remove("unknown")
	if ids, _ := x.ids("a"); len(ids) != 0 {
		t.Fatalf("pod a = %v after removing its containers", ids)
	}
	if ids, _ := x.ids("b"); !slices.Equal(ids, []string{"s1"}) {
		t.Fatalf("pod b = %v, want [s1]", ids)
	}
}
