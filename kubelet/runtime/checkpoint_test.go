package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestCheckpointsList(t *testing.T) {
	c := newCheckpoints(filepath.Join(t.TempDir(), "sandboxes"))
	if cps, err := c.list(); err != nil || len(cps) != 0 {
		t.Fatalf("missing dir: got %v, %v; want nothing", cps, err)
	}
	for _, id := range []string{"a", "b"} {
		if err := c.write(checkpoint{ID: id, PodUID: types.UID("uid-" + id)}); err != nil {
			t.Fatal(err)
		}
	}
	// A write that a killed kubelet never renamed is not a checkpoint.
	if err := os.WriteFile(c.path("c")+".tmp", []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	ids := func() map[string]bool {
		t.Helper()
		cps, err := c.list()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, cp := range cps {
			out[cp.ID] = true
		}
		return out
	}
	if got := ids(); len(got) != 2 || !got["a"] || !got["b"] {
		t.Fatalf("got %v, want a and b", got)
	}
	if err := c.remove("a"); err != nil {
		t.Fatal(err)
	}
	if got := ids(); len(got) != 1 || !got["b"] {
		t.Fatalf("after removing a: got %v, want b", got)
	}
	// A kubelet starting over reads what the last one left.
	restarted := newCheckpoints(c.dir)
	if cps, err := restarted.list(); err != nil || len(cps) != 1 || cps[0].ID != "b" || cps[0].PodUID != "uid-b" {
		t.Fatalf("after a restart: got %+v, %v; want checkpoint b of pod uid-b", cps, err)
	}
	// An unreadable checkpoint at start is an error naming the file.
	if err := os.WriteFile(c.path("d"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newCheckpoints(c.dir).list(); err == nil || !strings.Contains(err.Error(), "d.json") {
		t.Fatalf("corrupt checkpoint d.json: got %v, want an error naming it", err)
	}
}
