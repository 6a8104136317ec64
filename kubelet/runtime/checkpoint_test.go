package runtime

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/internal/testenv"
)

// noPause is a rebuild that finds no pause container.
func noPause(string) (checkpoint, bool, error) { return checkpoint{}, false, nil }

func newTestCheckpoints(t *testing.T) (*checkpoints, *testenv.SyncBuffer) {
	t.Helper()
	logs := &testenv.SyncBuffer{}
	return newCheckpoints(filepath.Join(t.TempDir(), "sandboxes"), slog.New(slog.NewTextHandler(logs, nil))), logs
}

func listed(t *testing.T, c *checkpoints, rebuild rebuildFunc) map[string]checkpoint {
	t.Helper()
	cps, err := c.list(rebuild)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]checkpoint{}
	for _, cp := range cps {
		out[cp.ID] = cp
	}
	return out
}

func keys(m map[string]checkpoint) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestCheckpointsList(t *testing.T) {
	c, _ := newTestCheckpoints(t)
	if got := listed(t, c, noPause); len(got) != 0 {
		t.Fatalf("missing dir: got %v, want nothing", got)
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
	if got := keys(listed(t, c, noPause)); fmt.Sprint(got) != "[a b]" {
		t.Fatalf("got %v, want a and b", got)
	}
	if err := c.remove("a"); err != nil {
		t.Fatal(err)
	}
	if got := keys(listed(t, c, noPause)); fmt.Sprint(got) != "[b]" {
		t.Fatalf("after removing a: got %v, want b", got)
	}
	// A kubelet starting over reads what the last one left.
	restarted := newCheckpoints(c.dir, slog.Default())
	if got := listed(t, restarted, noPause); len(got) != 1 || got["b"].PodUID != "uid-b" {
		t.Fatalf("after a restart: got %+v; want checkpoint b of pod uid-b", got)
	}
}

// TestCheckpointWriteDurable: the fsynced write leaves exactly the JSON of
// the checkpoint under its name (no temp file) and a restart reads it back.
func TestCheckpointWriteDurable(t *testing.T) {
	c, _ := newTestCheckpoints(t)
	want := checkpoint{ID: sandboxID(1), NetNS: "/run/netns/x", PodUID: "u", PodName: "p", PodNamespace: "ns"}
	if err := c.write(want); err != nil {
		t.Fatal(err)
	}
	names, err := filepath.Glob(filepath.Join(c.dir, "*"))
	if err != nil || len(names) != 1 || names[0] != c.path(want.ID) {
		t.Fatalf("directory holds %v (%v), want only %s", names, err, c.path(want.ID))
	}
	if got, err := newCheckpoints(c.dir, slog.Default()).read(want.ID); err != nil || got != want {
		t.Fatalf("read back %+v, %v; want %+v", got, err, want)
	}
}

func sandboxID(n int) string { return fmt.Sprintf("%032x", n) }

// TestCheckpointsRecover: unreadable checkpoints never fail a list. One
// whose pause container is left is rebuilt from its labels and rewritten;
// one without becomes a record of no pod with the netns its ID names. Each
// is logged once, naming the file; readable ones are left alone.
func TestCheckpointsRecover(t *testing.T) {
	c, logs := newTestCheckpoints(t)
	good := checkpoint{ID: sandboxID(1), NetNS: nsutil.Path(netnsName(sandboxID(1))), PodUID: "uid-good", PodName: "good", PodNamespace: "default"}
	if err := c.write(good); err != nil {
		t.Fatal(err)
	}
	garbled, empty, wrongShape, orphan := sandboxID(2), sandboxID(3), sandboxID(4), sandboxID(5)
	files := map[string]string{
		garbled:    "\x00\x00{\"id\":", // pause container left
		empty:      "",                 // pause container left
		wrongShape: "{}",               // pause container left
		orphan:     "",                 // nothing left
		"junk":     "garbage",          // not a sandbox ID
	}
	for id, content := range files {
		if err := os.WriteFile(c.path(id), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pauses := map[string]checkpoint{}
	for _, id := range []string{garbled, empty, wrongShape} {
		pauses[id] = checkpoint{ID: id, NetNS: "/run/netns/n-" + id, PodUID: types.UID("uid-" + id), PodName: "p-" + id, PodNamespace: "default"}
	}
	var asked []string
	rebuild := func(id string) (checkpoint, bool, error) {
		asked = append(asked, id)
		cp, ok := pauses[id]
		return cp, ok, nil
	}

	restarted := newCheckpoints(c.dir, c.log)
	got := listed(t, restarted, rebuild)
	want := map[string]checkpoint{good.ID: good, orphan: {ID: orphan, NetNS: nsutil.Path("hoist-" + orphan[:24])}}
	for id, cp := range pauses {
		want[id] = cp
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("listed\n%+v\nwant\n%+v", got, want)
	}
	sort.Strings(asked)
	if fmt.Sprint(asked) != fmt.Sprint([]string{garbled, empty, wrongShape, orphan}) {
		t.Errorf("rebuild asked for %v, want only the four unreadable sandbox checkpoints", asked)
	}
	for id, cp := range pauses {
		if onDisk, err := c.read(id); err != nil || onDisk != cp {
			t.Errorf("checkpoint %s on disk after recovery: %+v, %v; want it rewritten as %+v", id, onDisk, err, cp)
		}
	}
	for _, id := range []string{orphan, "junk"} {
		if b, err := os.ReadFile(c.path(id)); err != nil || string(b) != files[id] {
			t.Errorf("%s.json: got %q, %v; want it left as it was until the teardown", id, b, err)
		}
	}

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	wantLines := map[string]string{
		garbled:    "rebuilt from its pause container and rewritten",
		empty:      "file is empty",
		wrongShape: `holds sandbox ID \"\"`,
		orphan:     "tearing the sandbox down",
		"junk":     "ignored",
	}
	if len(lines) != len(wantLines) {
		t.Fatalf("log has %d lines, want one per unreadable checkpoint (%d):\n%s", len(lines), len(wantLines), logs.String())
	}
	for id, phrase := range wantLines {
		n := 0
		for _, l := range lines {
			if strings.Contains(l, "file="+c.path(id)+" ") {
				n++
				if !strings.Contains(l, phrase) {
					t.Errorf("log line for %s.json lacks %q: %s", id, phrase, l)
				}
			}
		}
		if n != 1 {
			t.Errorf("%d log lines name %s, want 1:\n%s", n, c.path(id), logs.String())
		}
	}

	// Later lists neither ask nor log again.
	asked, before := nil, logs.String()
	if again := listed(t, restarted, rebuild); !reflect.DeepEqual(again, want) || len(asked) != 0 || logs.String() != before {
		t.Errorf("second list: %+v, rebuild asked for %v, log grew by %q", again, asked, strings.TrimPrefix(logs.String(), before))
	}
	// A restart finds the rewritten checkpoints readable again.
	asked = nil
	listed(t, newCheckpoints(c.dir, c.log), rebuild)
	sort.Strings(asked)
	if fmt.Sprint(asked) != fmt.Sprint([]string{orphan}) {
		t.Errorf("after a restart rebuild asked for %v, want only the orphan %s", asked, orphan)
	}
}

// TestCheckpointsRecoverError: when the pause container cannot be looked up
// (containerd unreachable) the list fails, naming the file, rather than
// tearing down a sandbox that may be live; the next list retries.
func TestCheckpointsRecoverError(t *testing.T) {
	c, _ := newTestCheckpoints(t)
	id := sandboxID(7)
	if err := c.ensureDir(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.path(id), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	down := func(string) (checkpoint, bool, error) { return checkpoint{}, false, errors.New("connection refused") }
	if _, err := c.list(down); err == nil || !strings.Contains(err.Error(), c.path(id)) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("list with containerd down: got %v, want an error naming %s", err, c.path(id))
	}
	cp := checkpoint{ID: id, NetNS: "/run/netns/x", PodUID: "u"}
	up := func(string) (checkpoint, bool, error) { return cp, true, nil }
	if got := listed(t, c, up); !reflect.DeepEqual(got, map[string]checkpoint{id: cp}) {
		t.Fatalf("retry: got %+v, want the rebuilt %+v", got, cp)
	}
}

// BenchmarkCheckpointWrite measures one durable checkpoint write (write,
// fsync, rename, fsync of the directory) on the temp dir's filesystem.
func BenchmarkCheckpointWrite(b *testing.B) {
	c := newCheckpoints(filepath.Join(b.TempDir(), "sandboxes"), slog.Default())
	cp := checkpoint{NetNS: "/var/run/netns/hoist-0123456789abcdef01234567", PodUID: "0b7e3c1e-8a4f-4d0c-9a51-0c2f3e4d5a6b", PodName: "web-node1", PodNamespace: "default"}
	for i := 0; b.Loop(); i++ {
		cp.ID = sandboxID(i)
		if err := c.write(cp); err != nil {
			b.Fatal(err)
		}
	}
}
