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

// checkpoints is the directory of sandbox checkpoints. A checkpoint is
// written once and never changed, so list keeps what it has parsed and
// reads only new files: every pod sync lists them.
type checkpoints struct {
	dir string

	mu     sync.Mutex
	parsed map[string]checkpoint // by sandbox ID
}

func newCheckpoints(dir string) *checkpoints {
	return &checkpoints{dir: dir, parsed: map[string]checkpoint{}}
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
	return os.Rename(tmp, c.path(cp.ID))
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
	return nil
}

func (c *checkpoints) list() ([]checkpoint, error) {
	entries, err := os.ReadDir(c.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := make(map[string]bool, len(entries))
	var out []checkpoint
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		seen[id] = true
		cp, ok := c.parsed[id]
		if !ok {
			if cp, err = c.read(id); errors.Is(err, os.ErrNotExist) {
				continue // removed since ReadDir
			} else if err != nil {
				return nil, fmt.Errorf("sandbox checkpoint %s: %w", e.Name(), err)
			}
			c.parsed[id] = cp
		}
		out = append(out, cp)
	}
	for id := range c.parsed {
		if !seen[id] {
			delete(c.parsed, id)
		}
	}
	return out, nil
}
