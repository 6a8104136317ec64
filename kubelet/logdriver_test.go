package kubelet

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLogDriverBeside(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "hoist")
	if got := logDriverBeside(exe); got != exe {
		t.Fatalf("no driver installed: got %q, want the executable itself", got)
	}
	sib := filepath.Join(dir, LogDriverName)
	if err := os.WriteFile(sib, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := logDriverBeside(exe); got != exe {
		t.Fatalf("driver not executable: got %q, want %q", got, exe)
	}
	if err := os.Chmod(sib, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := logDriverBeside(exe); got != sib {
		t.Fatalf("got %q, want %q", got, sib)
	}
}
