package volumes

import (
	"os"
	"path/filepath"
	"testing"

	v1 "k8s.io/api/core/v1"
)

func TestPrepareAndCleanup(t *testing.T) {
	root := t.TempDir()
	host := filepath.Join(root, "host", "dir")
	create := v1.HostPathDirectoryOrCreate
	pod := &v1.Pod{}
	pod.UID = "u1"
	pod.Spec.Volumes = []v1.Volume{
		{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		{Name: "host", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: host, Type: &create}}},
	}
	m := &Manager{Root: root}
	paths, err := m.Prepare(pod)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{paths["scratch"], paths["host"]} {
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			t.Fatalf("%s not a directory: %v", p, err)
		}
	}
	if err := m.Cleanup("u1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(paths["scratch"]); !os.IsNotExist(err) {
		t.Fatalf("emptyDir survived cleanup: %v", err)
	}
	if _, err := os.Stat(host); err != nil {
		t.Fatal("cleanup must never touch hostPath volumes")
	}
}

func TestHostPathTypeChecked(t *testing.T) {
	dir := v1.HostPathDirectory
	pod := &v1.Pod{}
	pod.UID = "u2"
	pod.Spec.Volumes = []v1.Volume{{Name: "h", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/nonexistent/hoist", Type: &dir}}}}
	if _, err := (&Manager{Root: t.TempDir()}).Prepare(pod); err == nil {
		t.Fatal("want an error for a missing Directory hostPath")
	}
}
