package runtime

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/hoist-project/hoist/internal/nsutil"
)

// checkpoint records a sandbox before any kernel state exists for it, so a
// kubelet killed between creating the netns and the pause container still
// knows what to tear down (netns, CNI lease) on its next start.
type checkpoint struct {
	ID           string    `json:"id"`
	NetNS        string    `json:"netns"`
	PodUID       types.UID `json:"podUID"` // "" for a sandbox of no known pod (see load)
	PodName      string    `json:"podName"`
	PodNamespace string    `json:"podNamespace"`
}

// rebuildFunc rebuilds the checkpoint of sandbox id from what else is left
// of it (its pause container's labels); found is false when nothing is.
type rebuildFunc func(id string) (cp checkpoint, found bool, err error)

// checkpoints is the directory of sandbox checkpoints, which only this
// kubelet writes. Every pod sync lists them, so the directory is read once
// and then kept in memory as write and remove change it.
type checkpoints struct {
	dir string
	log *slog.Logger

	dirMu    sync.Mutex
	dirReady bool // dir exists and its entry is on disk

	mu     sync.Mutex
	loaded bool
	byID   map[string]checkpoint
}

func newCheckpoints(dir string, log *slog.Logger) *checkpoints {
	return &checkpoints{dir: dir, log: log, byID: map[string]checkpoint{}}
}

func (c *checkpoints) path(id string) string { return filepath.Join(c.dir, id+".json") }

func (c *checkpoints) write(cp checkpoint) error {
	if err := c.writeFile(cp); err != nil {
		return err
	}
	c.mu.Lock()
	c.byID[cp.ID] = cp
	c.mu.Unlock()
	return nil
}

// writeFile writes cp durably: the netns and CNI lease created after it
// must never outlive their record, so the file is fsynced before the rename
// and the directory after it. Without that, a power loss can leave the
// renamed file empty. It does not take c.mu, so lists do not wait on disks.
func (c *checkpoints) writeFile(cp checkpoint) error {
	if err := c.ensureDir(); err != nil {
		return err
	}
	data, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	tmp := c.path(cp.ID) + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	if err := os.Rename(tmp, c.path(cp.ID)); err != nil {
		return err
	}
	return syncDir(c.dir)
}

// ensureDir creates the directory and makes its entry durable, once.
func (c *checkpoints) ensureDir() error {
	c.dirMu.Lock()
	defer c.dirMu.Unlock()
	if c.dirReady {
		return nil
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(c.dir)); err != nil {
		return err
	}
	c.dirReady = true
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
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

// read returns the checkpoint of sandbox id as on disk; a file that does not
// hold a checkpoint of that sandbox is an error saying what is wrong with it.
func (c *checkpoints) read(id string) (checkpoint, error) {
	var cp checkpoint
	data, err := os.ReadFile(c.path(id))
	if err != nil {
		return cp, err
	}
	if len(data) == 0 {
		return cp, errors.New("file is empty")
	}
	if err := json.Unmarshal(data, &cp); err != nil {
		return cp, fmt.Errorf("not a checkpoint: %w", err)
	}
	if cp.ID != id {
		return cp, fmt.Errorf("holds sandbox ID %q, not the file's", cp.ID)
	}
	return cp, nil
}

// remove forgets a checkpoint. The directory is not fsynced: a removal lost
// to a power loss brings back the record of a sandbox that is gone, whose
// teardown then finds nothing left to do.
func (c *checkpoints) remove(id string) error {
	if err := os.Remove(c.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	c.mu.Lock()
	delete(c.byID, id)
	c.mu.Unlock()
	return nil
}

// list returns every checkpoint. The first call reads the directory; a
// checkpoint that cannot be read there is recovered with rebuild (see load).
func (c *checkpoints) list(rebuild rebuildFunc) ([]checkpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loaded {
		if err := c.load(rebuild); err != nil {
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

// load reads the directory into byID (c.mu held). A checkpoint that cannot
// be read (a power loss, a full disk, a hand edit) is logged once and never
// fails the load: its file name is the sandbox ID, which names the netns,
// and the pause container's labels hold the rest. If rebuild finds them, the
// checkpoint is rewritten and the pod keeps its sandbox; otherwise it is kept
// as a record of no pod, which the runtime's orphan scan tears down (CNI DEL,
// netns, file). Only an error of rebuild itself (containerd unreachable)
// fails the load, which the next list retries.
func (c *checkpoints) load(rebuild rebuildFunc) error {
	entries, err := os.ReadDir(c.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if _, done := c.byID[id]; !ok || done {
			continue // not a checkpoint, or known from a load that failed later
		}
		cp, err := c.read(id)
		if err == nil {
			c.byID[id] = cp
			continue
		}
		if err := c.recover(id, err, rebuild); err != nil {
			return err
		}
	}
	return nil
}

// recover handles checkpoint id that read rejected with problem (c.mu held).
func (c *checkpoints) recover(id string, problem error, rebuild rebuildFunc) error {
	file := c.path(id)
	if !isSandboxID(id) {
		c.log.Warn("sandbox checkpoint unreadable and not named after a sandbox ID the kubelet creates; ignored, remove it by hand",
			"file", file, "problem", problem)
		return nil
	}
	cp, found, err := rebuild(id)
	if err != nil {
		return fmt.Errorf("recover sandbox checkpoint %s (%v): %w", file, problem, err)
	}
	if !found {
		cp = checkpoint{ID: id, NetNS: nsutil.Path(netnsName(id))}
		c.byID[id] = cp
		c.log.Warn("sandbox checkpoint unreadable and its pause container is gone; tearing the sandbox down (CNI DEL, netns, checkpoint)",
			"file", file, "problem", problem, "netns", cp.NetNS)
		return nil
	}
	cp.ID = id
	c.byID[id] = cp
	pod := cp.PodNamespace + "/" + cp.PodName
	if err := c.writeFile(cp); err != nil {
		c.log.Warn("sandbox checkpoint unreadable; rebuilt from its pause container, pod keeps its sandbox, but rewriting the file failed",
			"file", file, "problem", problem, "pod", pod, "uid", cp.PodUID, "err", err)
		return nil
	}
	c.log.Warn("sandbox checkpoint unreadable; rebuilt from its pause container and rewritten, pod keeps its sandbox",
		"file", file, "problem", problem, "pod", pod, "uid", cp.PodUID)
	return nil
}

// isSandboxID reports whether id is one newID could have made.
func isSandboxID(id string) bool {
	b, err := hex.DecodeString(id)
	return err == nil && len(b) == 16 && strings.ToLower(id) == id
}
