package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// checkpoint records a sandbox before any kernel state exists for it, so a
// kubelet killed between creating the netns and the pause container still
// knows what to tear down (netns, CNI lease) on its next start.
type checkpoint struct {
	ID           string    `json:"id"`
	NetNS        string    `json:"netns"`
	PodUID       types.UID `json:"podUID"`
	PodName      string    `json:"podName"`
	PodNamespace string    `json:"podNamespace"`
}

// checkpoints is the directory of sandbox checkpoints, which only this
// kubelet writes. Every pod sync lists them, so the directory is read once
// and then kept in memory as write and remove change it.
type checkpoints struct {
	dir string

	mu     sync.Mutex
	loaded bool
	byID   map[string]checkpoint
}

func newCheckpoints(dir string) *checkpoints {
	return &checkpoints{dir: dir, byID: map[string]checkpoint{}}
}

func (c *checkpoints) path(id string) string { return filepath.Join(c.dir, id+".json") }

func (c *checkpoints) write(cp checkpoint) error {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	data, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	tmp := c.path(cp.ID) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, c.path(cp.ID)); err != nil {
		return err
	}
	c.mu.Lock()
	c.byID[cp.ID] = cp
	c.mu.Unlock()
	return nil
}

// sweepTemp removes checkpoints whose write a killed kubelet never finished:
// the rename had not happened, so nothing else exists for that sandbox yet.
// Only at start, before any sandbox is being created.
func (c *checkpoints) sweepTemp() error {
	tmps, err := filepath.Glob(filepath.Join(c.dir, "*.json.tmp"))
	if err != nil {
		return err
	}
	for _, tmp := range tmps {
		if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (c *checkpoints) read(id string) (checkpoint, error) {
	var cp checkpoint
	data, err := os.ReadFile(c.path(id))
	if err != nil {
		return cp, err
	}
	return cp, json.Unmarshal(data, &cp)
}

func (c *checkpoints) remove(id string) error {
	if err := os.Remove(c.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	c.mu.Lock()
	delete(c.byID, id)
	c.mu.Unlock()
	return nil
}

func (c *checkpoints) list() ([]checkpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loaded {
		if err := c.load(); err != nil {
			return nil, err
		}
		c.loaded = true
	}
	out := make([]checkpoint, 0, len(c.byID))
	for _, cp := range c.byID {
		out = append(out, cp)
	}
	return out, nil
}

// load reads the directory into byID (c.mu held).
func (c *checkpoints) load() error {
	entries, err := os.ReadDir(c.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		cp, err := c.read(id)
		if err != nil {
			return fmt.Errorf("sandbox checkpoint %s: %w", e.Name(), err)
		}
		c.byID[id] = cp
	}
	return nil
}
