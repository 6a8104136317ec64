package storage_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hoist-project/hoist/master/storage"
	"github.com/hoist-project/hoist/master/storage/storagetest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// backend is an etcd server to test against, and a client for it.
type backend struct {
	name   string
	client func(testing.TB) *clientv3.Client
}

// embeddedBackends: the embedded etcd over gRPC, and with the master's
// client (KV in process).
var embeddedBackends = []backend{
	{"embedded", func(t testing.TB) *clientv3.Client { return storagetest.Client(t, storagetest.Embedded(t)) }},
	{"embedded-in-process", storagetest.InProcess},
}

// backends runs a test against the embedded etcd and Debian's etcd 3.4.
func backends(t *testing.T, fn func(t *testing.T, s *storage.Store)) {
	runOn(t, append(slices.Clone(embeddedBackends),
		backend{"external-etcd-3.4", func(t testing.TB) *clientv3.Client { return storagetest.Client(t, storagetest.External(t)) }}), fn)
}

// embedded runs a test against the embedded etcd only.
func embedded(t *testing.T, fn func(t *testing.T, s *storage.Store)) { runOn(t, embeddedBackends, fn) }

func runOn(t *testing.T, bs []backend, fn func(t *testing.T, s *storage.Store)) {
	for _, b := range bs {
		t.Run(b.name, func(t *testing.T) { fn(t, storage.New(b.client(t), nil)) })
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestIntegrationStoreCRUDAndConflicts(t *testing.T) {
	backends(t, func(t *testing.T, s *storage.Store) {
		ctx := ctxT(t)
		rev, err := s.Create(ctx, "/registry/things/a", []byte("v1"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(ctx, "/registry/things/a", []byte("again")); !errors.Is(err, storage.ErrExists) {
			t.Fatalf("second create: got %v, want ErrExists", err)
		}
		rev2, err := s.Update(ctx, "/registry/things/a", []byte("v2"), rev)
		if err != nil || rev2 <= rev {
			t.Fatalf("update: rev %d err %v", rev2, err)
		}
		_, err = s.Update(ctx, "/registry/things/a", []byte("stale"), rev)
		var ce *storage.ConflictError
		if !errors.Is(err, storage.ErrConflict) || !errors.As(err, &ce) {
			t.Fatalf("stale update: got %v, want ErrConflict", err)
		}
		// The failed compare brings the current value along.
		if string(ce.Current.Value) != "v2" || ce.Current.ModRevision != rev2 {
			t.Fatalf("conflict's current value: %+v, want v2 at %d", ce.Current, rev2)
		}
		if _, err := s.Update(ctx, "/registry/things/missing", []byte("x"), 1); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("update of missing key: got %v, want ErrNotFound", err)
		}
		kv, err := s.Get(ctx, "/registry/things/a")
		if err != nil || string(kv.Value) != "v2" || kv.ModRevision != rev2 {
			t.Fatalf("get: %+v %v", kv, err)
		}
		_, err = s.Delete(ctx, "/registry/things/a", rev)
		if !errors.Is(err, storage.ErrConflict) || !errors.As(err, &ce) || ce.Current.ModRevision != rev2 {
			t.Fatalf("stale delete: got %v, want ErrConflict with revision %d", err, rev2)
		}
		if _, err := s.Delete(ctx, "/registry/things/a", rev2); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "/registry/things/a"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
	})
}

func TestIntegrationStoreListPagination(t *testing.T) {
	backends(t, func(t *testing.T, s *storage.Store) {
		ctx := ctxT(t)
		for i := range 5 {
			if _, err := s.Create(ctx, fmt.Sprintf("/registry/p/ns/%d", i), []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		page, err := s.List(ctx, "/registry/p/", storage.ListOptions{Limit: 2})
		if err != nil || len(page.KVs) != 2 || !page.More || page.Remaining != 3 {
			t.Fatalf("first page: %+v %v", page, err)
		}
		// A write after the first page must not show in later pages read at
		// the first page's revision.
		if _, err := s.Create(ctx, "/registry/p/ns/9", []byte("late")); err != nil {
			t.Fatal(err)
		}
		rest, err := s.List(ctx, "/registry/p/", storage.ListOptions{Revision: page.Revision, StartKey: page.KVs[1].Key + "\x00"})
		if err != nil || len(rest.KVs) != 3 || rest.More {
			t.Fatalf("rest: %d keys more=%v err=%v", len(rest.KVs), rest.More, err)
		}
	})
}

func TestIntegrationStoreWatchCompacted(t *testing.T) {
	backends(t, func(t *testing.T, s *storage.Store) {
		ctx := ctxT(t)
		first, err := s.Create(ctx, "/registry/w/a", []byte("1"))
		if err != nil {
			t.Fatal(err)
		}
		rev := first
		for i := range 3 {
			if rev, err = s.Update(ctx, "/registry/w/a", []byte(fmt.Sprint(i)), rev); err != nil {
				t.Fatal(err)
			}
		}
		// Resuming from a retained revision replays what followed it.
		evc, _ := s.Watch(ctx, "/registry/w/", first)
		for i := range 3 {
			select {
			case ev := <-evc:
				if ev.Type != storage.Put || ev.Revision <= first {
					t.Fatalf("event %d: %+v", i, ev)
				}
			case <-ctx.Done():
				t.Fatal("no replayed event")
			}
		}
		if _, err := s.Client().Compact(ctx, rev); err != nil {
			t.Fatal(err)
		}
		evc, errc := s.Watch(ctx, "/registry/w/", first)
		for range evc {
			t.Fatal("watch from a compacted revision delivered an event")
		}
		if err := <-errc; !errors.Is(err, storage.ErrCompacted) {
			t.Fatalf("watch from compacted revision: got %v, want ErrCompacted", err)
		}
		if _, err := s.List(ctx, "/registry/w/", storage.ListOptions{Revision: first}); !errors.Is(err, storage.ErrCompacted) {
			t.Fatalf("list at compacted revision: got %v, want ErrCompacted", err)
		}
	})
}

func TestIntegrationCompactor(t *testing.T) {
	embedded(t, func(t *testing.T, s *storage.Store) {
		ctx := ctxT(t)
		first, err := s.Create(ctx, "/registry/k/a", []byte("1"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(ctx, "/registry/k/a", []byte("2"), first); err != nil {
			t.Fatal(err)
		}
		go s.RunCompactor(ctx, 50*time.Millisecond)
		for {
			_, err := s.List(ctx, "/registry/k/", storage.ListOptions{Revision: first})
			if errors.Is(err, storage.ErrCompacted) {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("history at revision %d never compacted: %v", first, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
