package storage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/master/storage"
)

// TestIntegrationCacheStream: a stream hands out the initial state, then
// changes in order, on the caller's goroutine; Ready tells a buffered
// event from a wait; Next returns the context's error when it ends; Close
// unregisters the watcher.
func TestIntegrationCacheStream(t *testing.T) {
	embedded(t, func(t *testing.T, s *storage.Store) {
		ctx := ctxT(t)
		c := storage.NewCacher(s, "/registry/d/", storage.Codec{
			Decode: func(_ string, v []byte, _ int64) (any, error) { return string(v), nil },
			Attrs:  func(o any) any { return o },
		}, 16)
		go c.Run(ctx)
		if _, err := s.Create(ctx, "/registry/d/a", []byte("a")); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 10*time.Second, "the cache to hold a", func() error {
			if _, ok := c.Get("/registry/d/a"); !ok {
				return errors.New("not yet")
			}
			return nil
		})
		st, err := c.Stream(ctx, storage.WatchOptions{SendInitialEvents: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Watchers(); got != 1 {
			t.Fatalf("Watchers() = %d with one stream open, want 1", got)
		}
		next := func(want, typ string) {
			t.Helper()
			e, err := st.Next(ctx)
			if err != nil {
				t.Fatalf("Next: %v (want %s %q)", err, typ, want)
			}
			if e.Type != typ || (typ != storage.Bookmark && e.Obj != want) {
				t.Fatalf("Next = %s %v, want %s %q", e.Type, e.Obj, typ, want)
			}
		}
		if !st.Ready() {
			t.Fatal("Ready() = false with the initial state unsent")
		}
		next("a", storage.Added)
		next("", storage.Bookmark) // end of the initial state
		if st.Ready() {
			t.Fatal("Ready() = true with nothing buffered")
		}
		for _, v := range []string{"b", "c", "d"} {
			if _, err := s.Create(ctx, "/registry/d/"+v, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		for _, v := range []string{"b", "c", "d"} {
			next(v, storage.Added)
		}

		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if _, err := st.Next(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Next on an idle stream with an ended context = %v, want %v", err, context.DeadlineExceeded)
		}
		st.Close()
		st.Close() // idempotent
		if got := c.Watchers(); got != 0 {
			t.Fatalf("Watchers() = %d after Close, want 0", got)
		}
	})
}
