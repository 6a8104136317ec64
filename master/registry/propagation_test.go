package registry

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPropagationFinalizers(t *testing.T) {
	for _, c := range []struct {
		in      []string
		policy  metav1.DeletionPropagation
		want    []string
		changed bool
	}{
		{nil, "", nil, false},
		{[]string{"x"}, "", []string{"x"}, false},
		{nil, metav1.DeletePropagationOrphan, []string{"orphan"}, true},
		{[]string{"x", "foregroundDeletion"}, metav1.DeletePropagationOrphan, []string{"x", "orphan"}, true},
		{[]string{"orphan"}, metav1.DeletePropagationOrphan, []string{"orphan"}, false},
		{[]string{"orphan"}, metav1.DeletePropagationForeground, []string{"foregroundDeletion"}, true},
		{[]string{"orphan", "x", "foregroundDeletion"}, metav1.DeletePropagationBackground, []string{"x"}, true},
		{[]string{"x"}, metav1.DeletePropagationBackground, []string{"x"}, false},
	} {
		in := slices.Clone(c.in)
		got, changed := propagationFinalizers(in, c.policy)
		if !slices.Equal(got, c.want) || changed != c.changed {
			t.Errorf("%v with %q: got %v (changed %v), want %v (changed %v)", c.in, c.policy, got, changed, c.want, c.changed)
		}
		if !slices.Equal(in, c.in) {
			t.Errorf("%v with %q: input modified to %v", c.in, c.policy, in)
		}
	}
}
