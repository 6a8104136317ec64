package flannel

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// store keeps the delegate config each attachment was added with, one file
// per attachment: <dir>/<containerID>-<ifname>. Files are replaced
// atomically, so a crash leaves the old config or the new one.
type store struct{ dir string }

func (s store) path(containerID, ifname string) string {
	return filepath.Join(s.dir, containerID+"-"+ifname)
}

// Save writes the config of one attachment.
func (s store) Save(containerID, ifname string, conf []byte) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("save delegate config: %w", err)
	}
	tmp, err := os.CreateTemp(s.dir, ".tmp-")
	if err != nil {
		return fmt.Errorf("save delegate config: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	_, err = tmp.Write(conf)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.path(containerID, ifname))
	}
	if err != nil {
		return fmt.Errorf("save delegate config for %s/%s in %s: %w", containerID, ifname, s.dir, err)
	}
	return nil
}

// Load returns the saved config of an attachment; found is false when there
// is none (or it is unreadable garbage, which is treated the same way and
// reported in err for the log).
func (s store) Load(containerID, ifname string) (conf map[string]any, found bool, err error) {
	p := s.path(containerID, ifname)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read saved delegate config %s: %w", p, err)
	}
	if err := json.Unmarshal(data, &conf); err != nil {
		return nil, false, fmt.Errorf("saved delegate config %s is not JSON: %w", p, err)
	}
	return conf, true, nil
}

// Remove deletes an attachment's saved config; a missing one is fine.
func (s store) Remove(containerID, ifname string) error {
	if err := os.Remove(s.path(containerID, ifname)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove saved delegate config: %w", err)
	}
	return nil
}

// saved is one attachment's file as found by List.
type saved struct {
	name string         // file name: <containerID>-<ifname>
	conf map[string]any // nil when the file is not JSON
}

// List returns every saved config (temporary files skipped). A missing
// directory is an empty store.
func (s store) List() ([]saved, error) {
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list saved delegate configs: %w", err)
	}
	var out []saved
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".tmp-") {
			continue
		}
		sv := saved{name: e.Name()}
		if data, err := os.ReadFile(filepath.Join(s.dir, e.Name())); err == nil {
			_ = json.Unmarshal(data, &sv.conf)
		}
		out = append(out, sv)
	}
	return out, nil
}

// removeName deletes a saved file by its name (from List).
func (s store) removeName(name string) error {
	if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove saved delegate config: %w", err)
	}
	return nil
}
