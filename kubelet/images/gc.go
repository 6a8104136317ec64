package images

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	cimages "github.com/containerd/containerd/images"
	"github.com/containerd/containerd/namespaces"
)

// GCPolicy says when images are garbage-collected, as upstream's kubelet:
// when the image filesystem is more than HighThresholdPercent used, unused
// images are removed, least recently used first, until usage is below
// LowThresholdPercent.
type GCPolicy struct {
	HighThresholdPercent int           // 100 disables image GC
	LowThresholdPercent  int           // ≤ HighThresholdPercent
	MinAge               time.Duration // an image used more recently than this is kept
	// Dir is on the image filesystem: containerd's root
	// (/var/lib/containerd), where content and snapshots live.
	Dir string
}

// Validate reports a policy an operator must fix.
func (p GCPolicy) Validate() error {
	switch {
	case p.HighThresholdPercent < 0 || p.HighThresholdPercent > 100:
		return fmt.Errorf("image GC high threshold %d%% must be between 0 and 100", p.HighThresholdPercent)
	case p.LowThresholdPercent < 0 || p.LowThresholdPercent > p.HighThresholdPercent:
		return fmt.Errorf("image GC low threshold %d%% must be between 0 and the high threshold %d%%", p.LowThresholdPercent, p.HighThresholdPercent)
	case p.Dir == "":
		return errors.New("image GC needs the image filesystem directory (containerd's root)")
	}
	return nil
}

// FSUsage returns the size and the available bytes of the filesystem of dir.
func FSUsage(dir string) (capacity, available uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("image filesystem %s: %w", dir, err)
	}
	return st.Blocks * uint64(st.Bsize), st.Bavail * uint64(st.Bsize), nil
}

// candidate is an image GC may remove.
type candidate struct {
	name     string
	lastUsed time.Time
	size     int64
}

// GarbageCollect removes unused images when the image filesystem is above
// the high threshold, until the estimated usage is below the low one. An
// image is never removed while a container of the namespace uses it (by
// name or digest), nor when its name is in pinned (the pause image and the
// air-gap images). It returns the names removed.
func (m *Manager) GarbageCollect(ctx context.Context, p GCPolicy, pinned map[string]bool) ([]string, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if p.HighThresholdPercent >= 100 {
		return nil, nil
	}
	capacity, avail, err := FSUsage(p.Dir)
	if err != nil || capacity == 0 {
		return nil, err
	}
	used := capacity - avail
	if used*100 < uint64(p.HighThresholdPercent)*capacity {
		return nil, nil
	}
	toFree := int64(used) - int64(uint64(p.LowThresholdPercent)*capacity/100)
	ctx = namespaces.WithNamespace(ctx, m.cfg.Namespace)
	cands, err := m.candidates(ctx, p, pinned)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, c := range cands {
		if toFree <= 0 {
			break
		}
		if err := m.cfg.Client.ImageService().Delete(ctx, c.name, cimages.SynchronousDelete()); err != nil {
			errs = append(errs, fmt.Errorf("remove image %s: %w", c.name, err))
			continue
		}
		m.mu.Lock()
		delete(m.lastUsed, c.name)
		m.mu.Unlock()
		removed = append(removed, c.name)
		toFree -= c.size
		m.cfg.Log.Info("image garbage-collected", "image", c.name, "bytes", c.size)
	}
	return removed, errors.Join(errs...)
}

// candidates lists the removable images, least recently used first.
func (m *Manager) candidates(ctx context.Context, p GCPolicy, pinned map[string]bool) ([]candidate, error) {
	imgs, err := m.cfg.Client.ImageService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	ctrs, err := m.cfg.Client.Containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	keepName := map[string]bool{}
	for n := range pinned {
		keepName[n] = true
	}
	for _, c := range ctrs {
		info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
		if err == nil {
			keepName[info.Image] = true
		}
	}
	// An image sharing its digest with a kept one frees nothing.
	keepDigest := map[string]bool{}
	for _, img := range imgs {
		if keepName[img.Name] {
			keepDigest[img.Target.Digest.String()] = true
		}
	}
	now := m.cfg.Now()
	m.mu.Lock()
	lastUsed := make(map[string]time.Time, len(m.lastUsed))
	for k, v := range m.lastUsed {
		lastUsed[k] = v
	}
	m.mu.Unlock()
	var out []candidate
	for _, img := range imgs {
		if keepName[img.Name] || keepDigest[img.Target.Digest.String()] {
			continue
		}
		last, ok := lastUsed[img.Name]
		if !ok {
			last = img.UpdatedAt
		}
		if now.Sub(last) < p.MinAge {
			continue
		}
		size, _ := containerd.NewImage(m.cfg.Client, img).Size(ctx)
		out = append(out, candidate{name: img.Name, lastUsed: last, size: size})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].lastUsed.Before(out[j].lastUsed) })
	return out, nil
}
