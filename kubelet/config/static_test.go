package config

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const podA = `apiVersion: v1
kind: Pod
metadata: {name: a}
spec:
  containers: [{name: c, image: img}]
`

const twoPods = `apiVersion: v1
kind: Pod
metadata: {name: b1}
spec: {containers: [{name: c, image: img}]}
---
# a comment
---
apiVersion: v1
kind: Pod
metadata: {name: b2, namespace: kube-system}
spec: {containers: [{name: c, image: img}]}
`

const listJSON = `{"apiVersion":"v1","kind":"List","items":[
 {"apiVersion":"v1","kind":"Pod","metadata":{"name":"l1"},"spec":{"containers":[{"name":"c","image":"img"}]}},
 {"apiVersion":"v1","kind":"Pod","metadata":{"name":"l2"},"spec":{"containers":[{"name":"c","image":"img"}]}}]}`

func newScanner(t *testing.T) (*scanner, string, *bytes.Buffer) {
	dir := t.TempDir()
	var logs bytes.Buffer
	return &scanner{dir: dir, node: "n1", log: slog.New(slog.NewTextHandler(&logs, nil)), files: map[string]*fileState{}}, dir, &logs
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func summary(us []PodUpdate) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.Op.String()+" "+u.Pod.Namespace+"/"+u.Pod.Name)
	}
	return out
}

func expect(t *testing.T, got []PodUpdate, want ...string) {
	t.Helper()
	if g := strings.Join(summary(got), ","); g != strings.Join(want, ",") {
		t.Fatalf("updates = %q, want %q", g, strings.Join(want, ","))
	}
}

func TestScannerAddEditRemove(t *testing.T) {
	s, dir, _ := newScanner(t)
	write(t, dir, "a.yaml", podA)
	ups := s.scan()
	expect(t, ups, "add default/a-n1")
	uid := ups[0].Pod.UID
	if p := ups[0].Pod; p.Spec.NodeName != "n1" || p.Spec.RestartPolicy != "Always" || *p.Spec.TerminationGracePeriodSeconds != 30 {
		t.Fatalf("defaults not applied: %+v", p.Spec)
	}
	expect(t, s.scan()) // unchanged: nothing
	write(t, dir, "a.yaml", strings.Replace(podA, "image: img", "image: img2", 1))
	ups = s.scan()
	expect(t, ups, "remove default/a-n1", "add default/a-n1")
	if ups[1].Pod.UID == uid {
		t.Fatal("an edit must produce a new UID")
	}
	os.Remove(filepath.Join(dir, "a.yaml"))
	expect(t, s.scan(), "remove default/a-n1")
}

func TestScannerUIDStableAcrossRestarts(t *testing.T) {
	s1, dir, _ := newScanner(t)
	write(t, dir, "a.yaml", podA)
	u1 := s1.scan()[0].Pod.UID
	s2 := &scanner{dir: dir, node: "n1", log: s1.log, files: map[string]*fileState{}}
	if u2 := s2.scan()[0].Pod.UID; u1 != u2 {
		t.Fatalf("UID changed across scanners: %s != %s", u1, u2)
	}
	s3 := &scanner{dir: dir, node: "n2", log: s1.log, files: map[string]*fileState{}}
	if u3 := s3.scan()[0].Pod.UID; u1 == u3 {
		t.Fatal("UID must depend on the node name")
	}
}

func TestScannerMultiDocAndList(t *testing.T) {
	s, dir, _ := newScanner(t)
	write(t, dir, "b.yaml", twoPods)
	write(t, dir, "c.json", listJSON)
	ups := s.scan()
	if len(ups) != 4 {
		t.Fatalf("want 4 adds, got %q", summary(ups))
	}
	// Removing one document removes exactly that pod.
	write(t, dir, "b.yaml", strings.SplitN(twoPods, "---", 2)[0])
	expect(t, s.scan(), "remove kube-system/b2-n1")
}

func TestScannerIgnoresSwapAndHiddenFiles(t *testing.T) {
	s, dir, _ := newScanner(t)
	for _, n := range []string{".a.yaml.swp", "a.yaml~", ".#a.yaml", ".hidden.yaml", "a.yaml.swp"} {
		write(t, dir, n, "not: [valid")
	}
	expect(t, s.scan())
}

func TestScannerBadFileNamesFileAndFieldAndDisturbsNothing(t *testing.T) {
	s, dir, logs := newScanner(t)
	write(t, dir, "good.yaml", podA)
	write(t, dir, "bad.yaml", strings.Replace(podA, "image: img", "imagee: img", 1))
	expect(t, s.scan(), "add default/a-n1")
	line := logs.String()
	if !strings.Contains(line, "bad.yaml") || !strings.Contains(line, "imagee") {
		t.Fatalf("log must name the file and the field, got %q", line)
	}
	if n := strings.Count(line, "\n"); n != 1 {
		t.Fatalf("want exactly one log line, got %d: %q", n, line)
	}
	s.scan()
	if n := strings.Count(logs.String(), "\n"); n != 1 {
		t.Fatalf("the same bad content must not be logged again: %q", logs.String())
	}
	// A good file turning bad keeps its pods (bad input loses nothing).
	write(t, dir, "good.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: []}\n")
	expect(t, s.scan())
	if !strings.Contains(logs.String(), "spec.containers") {
		t.Fatalf("want error naming spec.containers, got %q", logs.String())
	}
}

func TestDecodeManifestErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"apiVersion: v1\nkind: Pod\nmetadata: {}\nspec: {containers: [{name: c, image: i}]}", "metadata.name"},
		{"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c}]}", "spec.containers[0].image"},
		{"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {restartPolicy: Sometimes, containers: [{name: c, image: i}]}", "spec.restartPolicy"},
		{"apiVersion: v1\nkind: Deployment\nmetadata: {name: a}", "kind"},
		{"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: i, volumeMounts: [{name: v, mountPath: /x}]}]}", "volumeMounts[0].name"},
		{"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: i, ports: 3}]}", "ports"},
	} {
		_, err := DecodeManifest([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DecodeManifest(%q) = %v, want an error naming %q", tc.in, err, tc.want)
		}
	}
}

func TestStaticDirRunEmitsWithinAPoll(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", podA)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan PodUpdate, 4)
	go (&StaticDir{Dir: dir, NodeName: "n1", Interval: 10 * time.Millisecond}).Run(ctx, out)
	select {
	case u := <-out:
		if u.Op != Add {
			t.Fatalf("got %v", u.Op)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no update within 5s")
	}
}
