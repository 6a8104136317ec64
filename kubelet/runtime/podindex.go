package runtime

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"k8s.io/apimachinery/pkg/types"
)

// podIndex maps pods to the IDs of their containers (pause containers
// included), so reading one pod loads each of its containers by ID instead
// of containerd listing every container of the node and filtering by label
// (containerd keeps no label index): with a batch of pods starting, that
// scan over all the node's containers ran several times per pod.
//
// containerd stays the source of truth: the index is filled from one full
// listing before its first use (and merged with every orphan scan's
// listing), grows with every container this runtime creates, and drops an
// ID when its container is deleted or found missing. It only ever adds
// from listings, so a listing racing a create cannot hide the new
// container.
type podIndex struct {
	mu     sync.Mutex
	loaded bool
	byPod  map[types.UID]map[string]struct{}
	podOf  map[string]types.UID
}

func (x *podIndex) addLocked(uid types.UID, id string) {
	if x.byPod == nil {
		x.byPod, x.podOf = map[types.UID]map[string]struct{}{}, map[string]types.UID{}
	}
	if x.byPod[uid] == nil {
		x.byPod[uid] = map[string]struct{}{}
	}
	x.byPod[uid][id] = struct{}{}
	x.podOf[id] = uid
}

// add records a container this runtime created.
func (x *podIndex) add(uid types.UID, id string) {
	x.mu.Lock()
	x.addLocked(uid, id)
	x.mu.Unlock()
}

// merge adds what a full listing found (container ID → pod) and marks the
// index usable.
func (x *podIndex) merge(found map[string]types.UID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for id, uid := range found {
		x.addLocked(uid, id)
	}
	x.loaded = true
}

// remove forgets a container that is gone.
func (x *podIndex) remove(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	uid, ok := x.podOf[id]
	if !ok {
		return
	}
	delete(x.podOf, id)
	delete(x.byPod[uid], id)
	if len(x.byPod[uid]) == 0 {
		delete(x.byPod, uid)
	}
}

// ids returns a pod's container IDs, sorted; ok is false until a full
// listing has been merged.
func (x *podIndex) ids(uid types.UID) (ids []string, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for id := range x.byPod[uid] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, x.loaded
}

// podContainers loads a pod's containers by ID through the index, filling
// the index from one full listing first if it has none yet.
func (r *Runtime) podContainers(ctx context.Context, uid types.UID) ([]containerd.Container, error) {
	ids, ok := r.index.ids(uid)
	if !ok {
		if _, err := r.scanContainers(ctx); err != nil {
			return nil, err
		}
		ids, _ = r.index.ids(uid)
	}
	ctrs := make([]containerd.Container, 0, len(ids))
	for _, id := range ids {
		c, err := r.client.LoadContainer(ctx, id)
		if errdefs.IsNotFound(err) {
			r.index.remove(id)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("load container %s: %w", id, err)
		}
		ctrs = append(ctrs, c)
	}
	return ctrs, nil
}
