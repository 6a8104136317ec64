package storage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hoist-project/hoist/master/storage"
	"github.com/hoist-project/hoist/master/storage/storagetest"
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
	s := storage.New(storagetest.Client(t, storagetest.Embedded(t)), nil)
	ctx := ctxT(t)
	if _, err := s.Create(ctx, "/registry/c/ns1/a", []byte("a")); err != nil {
		t.Fatal(err)
	}
	c := storage.NewCacher(s, "/registry/c/", func(_ string, v []byte, _ int64) (any, error) { return string(v), nil }, 4)
	go c.Run(ctx)

	// From "now": the current state first, narrowed to the key prefix.
	w, _, err := c.Watch(ctx, storage.WatchOptions{KeyPrefix: "/registry/c/ns1/", BookmarkInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if e := next(t, w); e.Type != storage.Added || e.Obj != "a" {
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
	objs, _, err := c.List(ctx, "/registry/c/")
	if err != nil || len(objs) != 3 {
		t.Fatalf("cache list: %v %v", objs, err)
	}
	if o, ok := c.Get("/registry/c/ns1/b"); !ok || o != "b" {
		t.Fatalf("cache get b: %v %v", o, ok)
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
	if e := next(t, w2); e.Type != storage.Modified || e.Revision != cur || e.PrevObj != "a2" {
		t.Fatalf("resume: %+v", e)
	}
	if n := c.Watchers(); n != 2 {
		t.Errorf("watchers = %d, want 2", n)
	}
}
