package registry

import (
	"sync"

	"github.com/hoist-project/hoist/master/storage"

	"k8s.io/apimachinery/pkg/runtime"
)

// getMemoSize bounds the decoded objects CachedGet keeps: enough for the
// namespaces that every create's admission looks up, small enough that
// the memory stays negligible even for pods.
const getMemoSize = 256

// getMemo keeps CachedGet's recent decodes by key, with the mod revision
// they were decoded at. A hot lookup (the namespace of every create) then
// costs a deep copy, not a JSON decode, until the object changes.
type getMemo struct {
	mu   sync.Mutex
	objs map[string]memoized
}

type memoized struct {
	rev int64
	obj runtime.Object // never handed out: callers get copies
}

// get returns a copy of the object decoded for key at rev, if kept.
func (m *getMemo) get(key string, rev int64) (runtime.Object, bool) {
	m.mu.Lock()
	e, ok := m.objs[key]
	m.mu.Unlock()
	if !ok || e.rev != rev {
		return nil, false
	}
	return e.obj.DeepCopyObject(), true
}

// put keeps a copy of obj, decoded for key at rev. When full it starts
// over: the hot keys come back at once, and eviction stays trivial.
func (m *getMemo) put(key string, rev int64, obj runtime.Object) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.objs == nil || len(m.objs) >= getMemoSize {
		m.objs = make(map[string]memoized, getMemoSize)
	}
	m.objs[key] = memoized{rev, obj.DeepCopyObject()}
}

// decodeCached decodes kv, read from the watch cache at key, through the
// memo: a new object on every call.
func (s *Store) decodeCached(key string, kv storage.KV) (runtime.Object, error) {
	if obj, ok := s.gets.get(key, kv.ModRevision); ok {
		return obj, nil
	}
	obj, err := s.decode(kv.Value, kv.ModRevision)
	if err != nil {
		return nil, err
	}
	s.gets.put(key, kv.ModRevision, obj)
	return obj, nil
}
