package config

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// StaticDir is the static-manifest directory source. It polls the directory
// (every Interval, default 1 s) and hashes each file's content: cheap, and
// unlike inotify it cannot miss an event across editor renames or restarts.
type StaticDir struct {
	Dir      string
	NodeName string
	Interval time.Duration
	Log      *slog.Logger

	synced atomic.Bool
}

// HasSynced reports whether the first scan has been sent.
func (s *StaticDir) HasSynced() bool { return s.synced.Load() }

// fileState is what the source remembers of one manifest file.
type fileState struct {
	hash   [32]byte
	pods   map[types.UID]*v1.Pod // the last good content (kept while the file is bad)
	broken bool
}

// Run polls until ctx ends. The first scan is sent before the first tick.
func (s *StaticDir) Run(ctx context.Context, out chan<- PodUpdate) error {
	if s.Dir == "" {
		return errors.New("static pod source: no manifest directory given")
	}
	interval := s.Interval
	if interval <= 0 {
		interval = time.Second
	}
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	w := &scanner{dir: s.Dir, node: s.NodeName, log: log, files: map[string]*fileState{}}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		updates := w.scan()
		for _, u := range updates {
			select {
			case out <- u:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if w.dirOK != nil && *w.dirOK {
			s.synced.Store(true) // an unreadable dir must not make running pods look orphaned
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// scanner turns directory snapshots into pod updates; it has no goroutines so
// tests drive it one scan at a time.
type scanner struct {
	dir   string
	node  string
	log   *slog.Logger
	files map[string]*fileState
	dirOK *bool
}

// ignoredName reports editor swap/backup files and hidden files.
func ignoredName(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "#") ||
		strings.HasSuffix(name, "~") || strings.HasSuffix(name, ".swp") ||
		strings.HasSuffix(name, ".swx") || strings.HasSuffix(name, ".tmp")
}

func (w *scanner) scan() []PodUpdate {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		// A missing or unreadable directory keeps the pods we have: it is more
		// likely a transient mount problem than a request to kill everything.
		if w.dirOK == nil || *w.dirOK {
			w.log.Error("static pod directory unreadable; keeping current pods", "dir", w.dir, "err", err)
		}
		ok := false
		w.dirOK = &ok
		return nil
	}
	ok := true
	w.dirOK = &ok
	seen := map[string]bool{}
	var updates []PodUpdate
	for _, e := range entries {
		if e.IsDir() || ignoredName(e.Name()) {
			continue
		}
		path := filepath.Join(w.dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				w.log.Error("static pod file unreadable", "file", path, "err", err)
				seen[path] = true // keep its pods
			}
			continue
		}
		seen[path] = true
		updates = append(updates, w.file(path, data)...)
	}
	for path, st := range w.files {
		if !seen[path] {
			updates = append(updates, removals(st.pods, nil)...)
			delete(w.files, path)
		}
	}
	return updates
}

// file handles one readable manifest file.
func (w *scanner) file(path string, data []byte) []PodUpdate {
	sum := sha256.Sum256(data)
	st := w.files[path]
	if st != nil && st.hash == sum {
		return nil
	}
	if st == nil {
		st = &fileState{pods: map[types.UID]*v1.Pod{}}
		w.files[path] = st
	}
	st.hash = sum
	pods, err := w.parse(path, data)
	if err != nil {
		// One line per bad content (the hash stops repeats); the file's last
		// good pods stay as they are.
		w.log.Error(fmt.Sprintf("static pod file %s: %v", path, err), "file", path)
		st.broken = true
		return nil
	}
	if st.broken {
		w.log.Info("static pod file is valid again", "file", path)
		st.broken = false
	}
	next := map[types.UID]*v1.Pod{}
	for _, p := range pods {
		next[p.UID] = p
	}
	updates := removals(st.pods, next)
	for _, uid := range sortedUIDs(next) {
		if _, ok := st.pods[uid]; !ok {
			updates = append(updates, PodUpdate{Op: Add, Pod: next[uid], Source: "file"})
		}
	}
	st.pods = next
	return updates
}

func (w *scanner) parse(path string, data []byte) ([]*v1.Pod, error) {
	raw, err := DecodeManifest(data)
	if err != nil {
		return nil, err
	}
	var pods []*v1.Pod
	names := map[string]bool{}
	for _, r := range raw {
		p, err := StaticPod(r, w.node, path)
		if err != nil {
			return nil, err
		}
		key := p.Namespace + "/" + p.Name
		if names[key] {
			return nil, fmt.Errorf("field metadata.name: pod %s appears twice", key)
		}
		names[key] = true
		pods = append(pods, p)
	}
	return pods, nil
}

// removals lists the pods of old that are not in next.
func removals(old, next map[types.UID]*v1.Pod) []PodUpdate {
	var out []PodUpdate
	for _, uid := range sortedUIDs(old) {
		if _, ok := next[uid]; !ok {
			out = append(out, PodUpdate{Op: Remove, Pod: old[uid], Source: "file"})
		}
	}
	return out
}

func sortedUIDs(m map[types.UID]*v1.Pod) []types.UID {
	uids := make([]types.UID, 0, len(m))
	for uid := range m {
		uids = append(uids, uid)
	}
	sort.Slice(uids, func(i, j int) bool { return uids[i] < uids[j] })
	return uids
}
