package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
)

func TestTerminationMount(t *testing.T) {
	r := &Runtime{cfg: Config{RootDir: t.TempDir()}}
	pod := &v1.Pod{}
	pod.UID = "u1"
	c := &v1.Container{Name: "c"}
	m, err := r.terminationMount(StartSpec{Pod: pod, Container: c, Restart: 2})
	if err != nil {
		t.Fatal(err)
	}
	if m == nil || m.Destination != "/dev/termination-log" || m.Source != r.terminationFile("u1", "c", 2) {
		t.Fatalf("default mount %+v", m)
	}
	if st, err := os.Stat(m.Source); err != nil || st.Mode().Perm() != 0o666 || st.Size() != 0 {
		t.Errorf("termination file: %v, %v; want empty and mode 0666", st, err)
	}
	c.TerminationMessagePath = "/tmp/msg"
	if m, _ := r.terminationMount(StartSpec{Pod: pod, Container: c}); m == nil || m.Destination != "/tmp/msg" {
		t.Errorf("custom path mount %+v", m)
	}
	c.VolumeMounts = []v1.VolumeMount{{Name: "v", MountPath: "/tmp/msg/"}}
	if m, err := r.terminationMount(StartSpec{Pod: pod, Container: c}); m != nil || err != nil {
		t.Errorf("a volume at the path still gets the file mounted: %+v, %v", m, err)
	}
}

func TestTerminationMessage(t *testing.T) {
	r := &Runtime{cfg: Config{RootDir: t.TempDir(), LogRoot: t.TempDir()}}
	labels := func(policy v1.TerminationMessagePolicy) map[string]string {
		return map[string]string{LabelPodUID: "u1", LabelPodName: "p", LabelPodNamespace: "ns", LabelContainerName: "c", LabelTermPolicy: string(policy)}
	}
	write := func(path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(r.terminationFile("u1", "c", 0), "bye")
	if got := r.terminationMessage(labels(""), 0, &Exit{Code: 3}); got != "bye" {
		t.Errorf("message %q; want bye", got)
	}
	write(r.terminationFile("u1", "c", 1), strings.Repeat("x", 5000))
	if got := r.terminationMessage(labels(v1.TerminationMessageReadFile), 1, &Exit{}); len(got) != 4096 {
		t.Errorf("message of a 5000-byte file has %d bytes; want 4096", len(got))
	}
	write(r.terminationFile("u1", "c", 2), "")
	write(filepath.Join(r.PodLogDir("ns", "p", "u1"), "c", "2.log"), "2026-01-02T03:04:05Z stderr F oops\n")
	fallback := labels(v1.TerminationMessageFallbackToLogsOnError)
	for _, tc := range []struct {
		labels map[string]string
		code   int
		want   string
	}{
		{fallback, 1, "oops"},
		{fallback, 0, ""},   // only a failed run falls back
		{labels(""), 1, ""}, // policy File never reads logs
	} {
		if got := r.terminationMessage(tc.labels, 2, &Exit{Code: tc.code}); got != tc.want {
			t.Errorf("policy %q, exit %d: message %q; want %q", tc.labels[LabelTermPolicy], tc.code, got, tc.want)
		}
	}
	if got := r.terminationMessage(labels(""), 9, &Exit{Code: 1}); got != "" {
		t.Errorf("no file: message %q", got)
	}
}
