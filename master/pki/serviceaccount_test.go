package pki

import (
	"os"
	"path/filepath"
	"testing"
)

func TestEnsureServiceAccountKeyPersists(t *testing.T) {
	dir := t.TempDir()
	k1, err := EnsureServiceAccountKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "pki", ServiceAccountKeyFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", path, st.Mode().Perm())
	}
	k2, err := EnsureServiceAccountKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Fatal("second start generated a new service account key")
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureServiceAccountKey(dir); err == nil {
		t.Fatal("a corrupt key was silently replaced, which would invalidate every issued token")
	}
}
