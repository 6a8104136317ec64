package storage_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoist-project/hoist/master/storage"
)

func next(t *testing.T, ch <-chan storage.CacheEvent) storage.CacheEvent {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("watch closed")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no cache event within 10s")
	}
	return storage.CacheEvent{}
}

func TestIntegrationCacher(t *testing.T) {
	embedded(t, func(t *testing.T, s *storage.Store) {
		ctx := ctxT(t)
		if _, err := s.Create(ctx, "/registry/c/ns1/a", []byte("a")); err != nil {
			t.Fatal(err)
		}
		var decodes atomic.Int64
		// Objects are the values; their attributes the values' first letter.
		c := storage.NewCacher(s, "/registry/c/", storage.Codec{
			Decode: func(_ string, v []byte, _ int64) (any, error) { decodes.Add(1); return string(v), nil },
			Attrs:  func(o any) any { return o.(string)[:1] },
		}, 4)
		go c.Run(ctx)

		// From "now": the current state first, narrowed to the key prefix.
		w, _, err := c.Watch(ctx, storage.WatchOptions{KeyPrefix: "/registry/c/ns1/", BookmarkInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if e := next(t, w); e.Type != storage.Added || e.Obj != "a" || e.Attrs != "a" {
			t.Fatalf("initial: %+v", e)
		}
		rev, _ := s.Create(ctx, "/registry/c/ns2/other", []byte("x")) // other namespace: filtered
		if _, err := s.Create(ctx, "/registry/c/ns1/b", []byte("b")); err != nil {
			t.Fatal(err)
		}
		// Idle bookmarks may come first on a loaded machine (100 ms interval).
		e := next(t, w)
		for e.Type == storage.Bookmark {
			e = next(t, w)
		}
		if e.Type != storage.Added || e.Obj != "b" {
			t.Fatalf("create: %+v", e)
		}
		if e := next(t, w); e.Type != storage.Bookmark {
			t.Fatalf("want a bookmark while idle, got %+v", e)
		}
		objs, _, err := c.List(ctx, "/registry/c/", nil)
		if err != nil || len(objs) != 3 || objs[0] != "a" || objs[1] != "b" || objs[2] != "x" {
			t.Fatalf("cache list: %v %v", objs, err)
		}
		// A matcher sees attributes; only what it accepts is decoded.
		before := decodes.Load()
		objs, _, err = c.List(ctx, "/registry/c/", func(a any) bool { return a == "b" })
		if err != nil || len(objs) != 1 || objs[0] != "b" {
			t.Fatalf("cache list of b: %v %v", objs, err)
		}
		if n := decodes.Load() - before; n != 1 {
			t.Errorf("a list matching one object decoded %d", n)
		}
		if kv, ok := c.Get("/registry/c/ns1/b"); !ok || string(kv.Value) != "b" || kv.ModRevision <= rev {
			t.Fatalf("cache get b: %+v %v", kv, ok)
		}
		mw, _, err := c.Watch(ctx, storage.WatchOptions{Match: func(a any) bool { return a == "x" }})
		if err != nil {
			t.Fatal(err)
		}
		if e := next(t, mw); e.Type != storage.Added || e.Obj != "x" {
			t.Fatalf("initial state matching x: %+v", e)
		}
		if o, ok := c.Get("/registry/c/ns1/missing"); ok {
			t.Fatalf("cache get of a missing key: %v", o)
		}
		// Overflow the 4-event window: a watch from before it is refused.
		cur := rev
		for range 6 {
			kv, _ := s.Get(ctx, "/registry/c/ns1/a")
			if cur, err = s.Update(ctx, "/registry/c/ns1/a", []byte("a2"), kv.ModRevision); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, _, err = c.Watch(ctx, storage.WatchOptions{FromRevision: rev})
			if errors.Is(err, storage.ErrTooOld) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("watch from before the window: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// A watch inside the window resumes with MODIFIED events.
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		w2, _, err := c.Watch(wctx, storage.WatchOptions{FromRevision: cur - 1})
		if err != nil {
			t.Fatal(err)
		}
		if e := next(t, w2); e.Type != storage.Modified || e.Revision != cur || e.Obj != "a2" || e.PrevAttrs != "a" {
			t.Fatalf("resume: %+v", e)
		}
		if n := c.Watchers(); n != 3 {
			t.Errorf("watchers = %d, want 3", n)
		}
	})
}

// TestIntegrationCacherDecodesLazily: a change nobody watches is not
// decoded; one that several watchers receive is decoded once, and its
// attributes come from that decode.
func TestIntegrationCacherDecodesLazily(t *testing.T) {
	embedded(t, func(t *testing.T, s *storage.Store) {
		ctx := ctxT(t)
		var decodes atomic.Int64
		c := storage.NewCacher(s, "/registry/l/", storage.Codec{
			Decode: func(_ string, v []byte, _ int64) (any, error) { decodes.Add(1); return string(v), nil },
			Attrs:  func(o any) any { return o.(string)[:1] },
		}, 100)
		go c.Run(ctx)
		var rev int64
		for _, v := range []string{"a", "b", "c"} {
			var err error
			if rev, err = s.Create(ctx, "/registry/l/"+v, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		// The cache has applied the creates once its revision reaches rev.
		deadline := time.Now().Add(10 * time.Second)
		for {
			cur, err := c.Revision(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if cur >= rev {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cache at revision %d, want %d", cur, rev)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if n := decodes.Load(); n != 0 {
			t.Fatalf("%d decodes of unwatched changes, want 0", n)
		}
		var ws []<-chan storage.CacheEvent
		for range 3 {
			w, _, err := c.Watch(ctx, storage.WatchOptions{FromRevision: rev})
			if err != nil {
				t.Fatal(err)
			}
			ws = append(ws, w)
		}
		kv, _ := s.Get(ctx, "/registry/l/b")
		if _, err := s.Update(ctx, "/registry/l/b", []byte("x"), kv.ModRevision); err != nil {
			t.Fatal(err)
		}
		for i, w := range ws {
			if e := next(t, w); e.Type != storage.Modified || e.Obj != "x" || e.Attrs != "x" || e.PrevAttrs != "b" {
				t.Fatalf("watcher %d: %+v", i, e)
			}
		}
		// One decode of the change for three watchers, one of the previous
		// version for its attributes.
		if n := decodes.Load(); n != 2 {
			t.Errorf("%d decodes for three watchers of one change, want 2", n)
		}
		// A selector list needs the attributes of a and c (decoded now) but
		// not of b, whose new attributes came with the watch event; it decodes
		// only the match.
		decodes.Store(0)
		objs, _, err := c.List(ctx, "/registry/l/", func(a any) bool { return a == "x" })
		if err != nil || len(objs) != 1 || objs[0] != "x" {
			t.Fatalf("list of x: %v %v", objs, err)
		}
		if n := decodes.Load(); n != 3 {
			t.Errorf("%d decodes for a selector list, want 3 (a and c attributes, x)", n)
		}
		decodes.Store(0)
		if _, _, err := c.List(ctx, "/registry/l/", func(a any) bool { return a == "a" }); err != nil {
			t.Fatal(err)
		}
		if n := decodes.Load(); n != 1 {
			t.Errorf("%d decodes for a second selector list, want 1: attributes are kept", n)
		}
	})
}

// TestIntegrationCacherSkipsUndecodable: a value that does not decode is
// left out of lists and watches, which go on with the rest.
func TestIntegrationCacherSkipsUndecodable(t *testing.T) {
	embedded(t, func(t *testing.T, s *storage.Store) {
		ctx := ctxT(t)
		c := storage.NewCacher(s, "/registry/u/", storage.Codec{
			Decode: func(_ string, v []byte, _ int64) (any, error) {
				if string(v) == "bad" {
					return nil, errors.New("corrupt")
				}
				return string(v), nil
			},
			Attrs: func(o any) any { return o },
		}, 100)
		go c.Run(ctx)
		w, _, err := c.Watch(ctx, storage.WatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"bad", "good"} {
			if _, err := s.Create(ctx, "/registry/u/"+v, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		if e := next(t, w); e.Type != storage.Added || e.Obj != "good" || e.Attrs != "good" {
			t.Fatalf("watch after an undecodable change: %+v", e)
		}
		for _, match := range []func(any) bool{nil, func(a any) bool { return a != "x" }} {
			objs, _, err := c.List(ctx, "/registry/u/", match)
			if err != nil || len(objs) != 1 || objs[0] != "good" {
				t.Fatalf("list: %v %v", objs, err)
			}
		}
	})
}

// TestIntegrationCacherGetFresh: a read not older than a revision is
// answered by the cache only once it is ready and has reached that
// revision; etcd's read reports its revision also for a missing key.
func TestIntegrationCacherGetFresh(t *testing.T) {
	embedded(t, func(t *testing.T, s *storage.Store) {
		ctx := ctxT(t)
		rev, err := s.Create(ctx, "/registry/f/a", []byte("a"))
		if err != nil {
			t.Fatal(err)
		}
		c := storage.NewCacher(s, "/registry/f/", storage.Codec{
			Decode: func(_ string, v []byte, _ int64) (any, error) { return string(v), nil },
			Attrs:  func(o any) any { return o },
		}, 100)
		if _, _, fresh := c.GetFresh("/registry/f/a", 0); fresh {
			t.Fatal("a cache that never listed answered")
		}
		go c.Run(ctx)
		if _, err := c.Revision(ctx); err != nil {
			t.Fatal(err)
		}
		if kv, found, fresh := c.GetFresh("/registry/f/a", 0); !fresh || !found || string(kv.Value) != "a" || kv.ModRevision != rev {
			t.Fatalf("any version of a: %+v found %v fresh %v", kv, found, fresh)
		}
		if _, found, fresh := c.GetFresh("/registry/f/missing", rev); !fresh || found {
			t.Fatalf("missing key at a reached revision: found %v fresh %v", found, fresh)
		}
		if _, _, fresh := c.GetFresh("/registry/f/a", rev+1); fresh {
			t.Fatal("a revision the cache has not reached was answered from it")
		}
		rev2, err := s.Update(ctx, "/registry/f/a", []byte("a2"), rev)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			kv, found, fresh := c.GetFresh("/registry/f/a", rev2)
			if fresh {
				if !found || string(kv.Value) != "a2" {
					t.Fatalf("a at the update's revision: %+v found %v", kv, found)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cache did not reach revision %d", rev2)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, read, err := s.GetWithRevision(ctx, "/registry/f/missing"); !errors.Is(err, storage.ErrNotFound) || read < rev2 {
			t.Fatalf("etcd read of a missing key: revision %d (want >= %d), %v", read, rev2, err)
		}
	})
}
