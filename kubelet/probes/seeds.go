package probes

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
)

// SeedStore remembers each probed container's last Ready/Started outside
// the kubelet process, so that a restarted kubelet keeps a Ready pod Ready
// until the first probe result (pods from the API also seed from their last
// written status; static pods without an API server have only this).
type SeedStore interface {
	Load(containerID string) (Seed, bool)
	Save(containerID string, s Seed) error
	Delete(containerID string) error
}

// DirSeeds keeps one small JSON file per container in Dir.
type DirSeeds struct{ Dir string }

func (d DirSeeds) path(id string) string { return filepath.Join(d.Dir, filepath.Base(id)+".json") }

// Load implements SeedStore.
func (d DirSeeds) Load(id string) (Seed, bool) {
	var s Seed
	b, err := os.ReadFile(d.path(id))
	if err != nil || json.Unmarshal(b, &s) != nil {
		return Seed{}, false
	}
	return s, true
}

// Save implements SeedStore (write to a temporary file, then rename).
func (d DirSeeds) Save(id string, s Seed) error {
	if err := os.MkdirAll(d.Dir, 0o750); err != nil {
		return err
	}
	b, _ := json.Marshal(s)
	tmp := d.path(id) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, d.path(id))
}

// Delete implements SeedStore.
func (d DirSeeds) Delete(id string) error {
	if err := os.Remove(d.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
