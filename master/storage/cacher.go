package storage

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Change types a cache watcher sees.
const (
	Added    = "ADDED"
	Modified = "MODIFIED"
	Removed  = "DELETED"
	Bookmark = "BOOKMARK"
)

// CacheEvent is one decoded change. Attrs are Obj's selector attributes
// (see Codec); PrevAttrs those of the object before the change (nil for
// additions), so selector-filtered watchers can tell an object that
// stopped matching from one that never did.
type CacheEvent struct {
	Type      string
	Key       string
	Obj       any
	Attrs     any
	PrevAttrs any
	Revision  int64
	// InitialEventsEnd marks the bookmark that ends the initial state of a
	// watch that asked for it (sendInitialEvents).
	InitialEventsEnd bool
	// Memo belongs to Obj and is shared by every watcher that receives
	// this event (nil on bookmarks): serializers keep their encoding of
	// Obj there, so a thousand watchers encode a change once. Only the
	// event window holds memos, so their memory is bounded.
	Memo *Memo

	// lazy, on the event window's events, decodes Obj, Attrs and
	// PrevAttrs on first use: a change nobody watches is never decoded,
	// one that many watch is decoded once. Watch fills the fields in
	// before sending.
	lazy *lazyEvent
}

// lazyEvent is a change's value, decoded once when a watcher needs it.
type lazyEvent struct {
	value []byte
	attrs *lazyAttrs
	prev  *cachedObj // the object before the change (nil: none)
	once  sync.Once
	obj   any
	err   error
}

// Memo holds one value computed on first use.
type Memo struct {
	once sync.Once
	val  any
}

// Get returns the memoized value, computing it with f the first time.
func (m *Memo) Get(f func() any) any {
	m.once.Do(func() { m.val = f() })
	return m.val
}

// Codec turns stored values into the caller's objects.
type Codec struct {
	// Decode returns the object stored at key, stamping rev as its
	// resourceVersion. Every call returns a new object.
	Decode func(key string, value []byte, rev int64) (any, error)
	// Attrs returns what selectors match on (labels, selectable fields) of
	// a decoded object. The cache keeps these and the encoded value rather
	// than the decoded object, which is several times larger.
	Attrs func(obj any) any
}

// ErrTooOld is returned by Cacher.Watch when the requested revision is older
// than the cache's event window; the caller may fall back to an etcd watch.
var ErrTooOld = errors.New("revision older than the watch cache window")

// cachedObj is one object as the cache keeps it: encoded, decoded on
// demand, with its selector attributes computed on first use.
type cachedObj struct {
	value []byte
	rev   int64
	attrs *lazyAttrs
}

// lazyAttrs are an object's selector attributes, computed once: from the
// first decode of the object that happens anyway (a watch event, a list)
// or, if a selector needs them first, from a decode of their own.
type lazyAttrs struct {
	once  sync.Once
	attrs any
	err   error
}

// fill sets the attributes from obj, a decode of the same value, unless
// they are known already.
func (c *Cacher) fill(la *lazyAttrs, obj any) {
	la.once.Do(func() { la.attrs = c.codec.Attrs(obj) })
}

// attrsOf returns co's attributes, decoding its value if nothing did yet.
// Safe without the lock: values are never modified.
func (c *Cacher) attrsOf(key string, co cachedObj) (any, error) {
	la := co.attrs
	la.once.Do(func() {
		obj, err := c.codec.Decode(key, co.value, co.rev)
		if err != nil {
			la.err = err
			return
		}
		la.attrs = c.codec.Attrs(obj)
	})
	return la.attrs, la.err
}

// decodeEntry returns a new decoded object of e, noting its attributes.
// An undecodable value is logged and left out (ok false), as it always
// was: the cache used to skip such values when they arrived.
func (c *Cacher) decodeEntry(e entry) (obj any, ok bool) {
	obj, err := c.codec.Decode(e.key, e.value, e.rev)
	if err != nil {
		slog.Warn("watch cache: skipping undecodable object", "key", e.key, "err", err)
		return nil, false
	}
	c.fill(e.attrs, obj)
	return obj, true
}

// resolve fills in a window event's decoded fields, decoding its value on
// the first call for that event (from any watcher). Watchers skip an
// event whose value does not decode.
func (c *Cacher) resolve(e CacheEvent) (CacheEvent, error) {
	l := e.lazy
	if l == nil {
		return e, nil
	}
	l.once.Do(func() {
		l.obj, l.err = c.codec.Decode(e.Key, l.value, e.Revision)
		if l.err != nil {
			slog.Warn("watch cache: skipping undecodable event", "key", e.Key, "err", l.err)
			return
		}
		c.fill(l.attrs, l.obj)
	})
	if l.err != nil {
		return e, l.err
	}
	e.Obj, e.Attrs, e.lazy = l.obj, l.attrs.attrs, nil
	if l.prev != nil {
		// An undecodable previous version counts as not matching.
		e.PrevAttrs, _ = c.attrsOf(e.Key, *l.prev)
	}
	return e, nil
}

// Cacher mirrors one prefix in memory, fed by a single etcd watch, and serves
// any number of watchers and RV=0 lists without touching etcd.
type Cacher struct {
	store    *Store
	prefix   string
	codec    Codec
	capacity int

	mu       sync.RWMutex // watchers read under RLock, so a broadcast does not serialize them
	ready    bool
	gen      int // bumped on every relist; watchers of an old generation end
	objs     map[string]cachedObj
	events   []CacheEvent // ascending revisions, all events after startRev
	startRev int64
	rev      int64
	notify   chan struct{} // closed and replaced whenever state changes
	watchers int
}

// NewCacher returns a cache of prefix keeping at most capacity events.
func NewCacher(store *Store, prefix string, codec Codec, capacity int) *Cacher {
	return &Cacher{store: store, prefix: prefix, codec: codec, capacity: capacity,
		objs: map[string]cachedObj{}, notify: make(chan struct{})}
}

// Run keeps the cache in sync until ctx ends, relisting after watch failures.
func (c *Cacher) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := c.listAndWatch(ctx); err != nil && ctx.Err() == nil {
			slog.Warn("watch cache relisting", "prefix", c.prefix, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (c *Cacher) listAndWatch(ctx context.Context) error {
	res, err := c.store.List(ctx, c.prefix, ListOptions{})
	if err != nil {
		return err
	}
	objs := make(map[string]cachedObj, len(res.KVs))
	for _, kv := range res.KVs {
		objs[kv.Key] = cachedObj{kv.Value, kv.ModRevision, &lazyAttrs{}}
	}
	c.mu.Lock()
	c.gen++
	c.ready = true
	c.objs = objs
	c.events = nil
	c.startRev, c.rev = res.Revision, res.Revision
	c.broadcastLocked()
	c.mu.Unlock()

	evc, errc := c.store.Watch(ctx, c.prefix, res.Revision)
	for ev := range evc {
		c.apply(ev)
	}
	select {
	case err := <-errc:
		return err
	default:
		return ctx.Err()
	}
}

// apply records a change without decoding it: watchers decode it (once)
// when they send it, lists when they read the object.
func (c *Cacher) apply(ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev, had := c.objs[ev.Key]
	l := &lazyEvent{value: ev.Value, attrs: &lazyAttrs{}}
	ce := CacheEvent{Key: ev.Key, Revision: ev.Revision, Memo: &Memo{}, lazy: l}
	if had {
		l.prev = &prev
	}
	switch {
	case ev.Type == Deleted:
		ce.Type = Removed
		delete(c.objs, ev.Key)
	case had:
		ce.Type = Modified
		c.objs[ev.Key] = cachedObj{ev.Value, ev.Revision, l.attrs}
	default:
		ce.Type = Added
		c.objs[ev.Key] = cachedObj{ev.Value, ev.Revision, l.attrs}
	}
	if len(c.events) >= c.capacity {
		drop := len(c.events) / 2
		c.startRev = c.events[drop-1].Revision
		c.events = append([]CacheEvent(nil), c.events[drop:]...)
	}
	c.events = append(c.events, ce)
	c.rev = ev.Revision
	c.broadcastLocked()
}

func (c *Cacher) broadcastLocked() {
	close(c.notify)
	c.notify = make(chan struct{})
}

// waitReady blocks until the first list completed.
func (c *Cacher) waitReady(ctx context.Context) error {
	for {
		c.mu.Lock()
		ready, n := c.ready, c.notify
		c.mu.Unlock()
		if ready {
			return nil
		}
		select {
		case <-n:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// List returns the cached objects under keyPrefix whose attributes match
// (nil: all), sorted by key, newly decoded, and the revision they reflect.
func (c *Cacher) List(ctx context.Context, keyPrefix string, match func(attrs any) bool) ([]any, int64, error) {
	if err := c.waitReady(ctx); err != nil {
		return nil, 0, err
	}
	c.mu.RLock()
	entries := c.entriesLocked(keyPrefix)
	rev := c.rev
	c.mu.RUnlock()
	// Decoding happens outside the lock: values are never modified.
	entries = c.matching(entries, match)
	out := make([]any, 0, len(entries))
	for _, e := range entries {
		if obj, ok := c.decodeEntry(e); ok {
			out = append(out, obj)
		}
	}
	return out, rev, nil
}

// Get returns the cached value at key (with its mod revision), if the
// cache is ready and has it. It may lag etcd: callers either accept that
// or compare-and-swap on the revision.
func (c *Cacher) Get(key string) (KV, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	co, ok := c.objs[key]
	return KV{Key: key, Value: co.value, ModRevision: co.rev}, ok && c.ready
}

// GetFresh is Get for a read that must not be older than revision
// minRev (0: any): fresh is false when the cache is not ready or has not
// reached minRev, and the caller reads etcd instead. found reports
// whether the key exists at the cache's revision.
func (c *Cacher) GetFresh(key string, minRev int64) (kv KV, found, fresh bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.ready || c.rev < minRev {
		return KV{}, false, false
	}
	co, ok := c.objs[key]
	return KV{Key: key, Value: co.value, ModRevision: co.rev}, ok, true
}

type entry struct {
	key string
	cachedObj
}

// entriesLocked returns the objects under keyPrefix.
func (c *Cacher) entriesLocked(keyPrefix string) []entry {
	var out []entry
	for k, co := range c.objs {
		if len(k) >= len(keyPrefix) && k[:len(keyPrefix)] == keyPrefix {
			out = append(out, entry{k, co})
		}
	}
	return out
}

// matching keeps the entries whose attributes match (nil: all), sorted by
// key. It runs outside the lock: attributes not yet known are decoded
// (an undecodable object matches nothing).
func (c *Cacher) matching(entries []entry, match func(attrs any) bool) []entry {
	if match != nil {
		kept := entries[:0]
		for _, e := range entries {
			if a, err := c.attrsOf(e.key, e.cachedObj); err == nil && match(a) {
				kept = append(kept, e)
			}
		}
		entries = kept
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].key < entries[j].key })
	return entries
}

// Revision returns the revision the cache reflects, once it is ready.
func (c *Cacher) Revision(ctx context.Context) (int64, error) {
	if err := c.waitReady(ctx); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rev, nil
}

// Size returns the number of cached objects and buffered events.
func (c *Cacher) Size() (objects, events int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.objs), len(c.events)
}

// Watchers returns the number of open cache watches.
func (c *Cacher) Watchers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.watchers
}

// WatchOptions of a cache watch.
type WatchOptions struct {
	// FromRevision: 0 sends the current state as ADDED events first, then
	// changes; otherwise only changes after that revision.
	FromRevision int64
	// KeyPrefix narrows the watch (e.g. to a namespace).
	KeyPrefix string
	// BookmarkInterval > 0 sends BOOKMARK events while idle.
	BookmarkInterval time.Duration
	// SendInitialEvents sends the current state as ADDED events followed by
	// a BOOKMARK with InitialEventsEnd (client-go's streaming list), even
	// when FromRevision is set.
	SendInitialEvents bool
	// Match, if set, leaves objects whose attributes do not match out of
	// the initial state (they are not even decoded); changes are all sent.
	Match func(attrs any) bool
}

// Watch streams cache events on a channel, from a goroutine reading a
// Stream. The channel closes when ctx ends; errc then carries why, if it
// was not ctx (ErrTooOld, or a cache reset which the client must answer
// with a relist).
func (c *Cacher) Watch(ctx context.Context, o WatchOptions) (<-chan CacheEvent, <-chan error, error) {
	st, err := c.Stream(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	out := make(chan CacheEvent, 16)
	errc := make(chan error, 1)
	go func() {
		defer close(out)
		defer st.Close()
		for {
			e, err := st.Next(ctx)
			if err != nil {
				if ctx.Err() == nil {
					errc <- err
				}
				return
			}
			select {
			case out <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, errc, nil
}
