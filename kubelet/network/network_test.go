package network

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStatusNamesTheConfDir(t *testing.T) {
	dir := t.TempDir()
	m := New(Config{ConfDir: dir})
	err := m.Status()
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "no CNI configuration in "+dir) {
		t.Fatalf("Status() = %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "10-a.conflist"), []byte(`{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "05-b.conf"), []byte(`{"cniVersion":"1.0.0","name":"b","type":"bridge"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	list, err := m.load()
	if err != nil || list.Name != "b" {
		t.Fatalf("load() = %v, %v; want the first file by name (b)", list, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "01-broken.conflist"), []byte(`{`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Status(); err == nil || !strings.Contains(err.Error(), "01-broken.conflist") {
		t.Fatalf("a broken config must be named, got %v", err)
	}
}
