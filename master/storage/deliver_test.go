package storage_test

import (
	"testing"
	"time"

	"github.com/hoist-project/hoist/master/storage"
)

// TestIntegrationCacherDeliver: with Deliver set, events reach the callback
// in order on the watch's goroutine, none reach the channel, and returning
// false ends the watch (the channel closes).
func TestIntegrationCacherDeliver(t *testing.T) {
	embedded(t, func(t *testing.T, s *storage.Store) {
		ctx := ctxT(t)
		c := storage.NewCacher(s, "/registry/d/", storage.Codec{
			Decode: func(_ string, v []byte, _ int64) (any, error) { return string(v), nil },
			Attrs:  func(o any) any { return o },
		}, 4)
		go c.Run(ctx)
		if _, err := s.Create(ctx, "/registry/d/a", []byte("a")); err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 8)
		w, _, err := c.Watch(ctx, storage.WatchOptions{Deliver: func(e storage.CacheEvent) bool {
			got <- e.Obj.(string)
			return e.Obj != "c" // the third event ends the watch
		}})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"b", "c", "d"} {
			if _, err := s.Create(ctx, "/registry/d/"+v, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case _, open := <-w:
			if open {
				t.Fatal("an event reached the channel although Deliver was set")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the watch did not end within 10s of Deliver returning false")
		}
		var seen []string
		for len(got) > 0 {
			seen = append(seen, <-got)
		}
		if len(seen) != 3 || seen[0] != "a" || seen[1] != "b" || seen[2] != "c" {
			t.Fatalf("delivered %v, want [a b c] (d after the watch ended)", seen)
		}
	})
}
