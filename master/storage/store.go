// Package storage keeps API objects in etcd v3: one key per object under a
// prefix, the etcd revision as resourceVersion, compare-and-swap on the
// object's mod revision for optimistic concurrency, and watches that report
// compaction so callers can answer 410 Gone. It deals in bytes; encoding and
// decoding belong to the caller.
package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Errors returned by Store; callers map them to API status codes.
var (
	ErrNotFound  = errors.New("not found")
	ErrExists    = errors.New("already exists")
	ErrConflict  = errors.New("resource version conflict")
	ErrCompacted = errors.New("requested revision has been compacted")
)

// ConflictError is ErrConflict carrying the key's current value, read in
// the same transaction as the failed compare, so a read-modify-write loop
// retries without another round trip.
type ConflictError struct{ Current KV }

func (e *ConflictError) Error() string { return ErrConflict.Error() }

// Is makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// conflictOrNotFound interprets the Else(OpGet) branch of a failed compare.
func conflictOrNotFound(resp *clientv3.TxnResponse) error {
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return ErrNotFound
	}
	k := kvs[0]
	return &ConflictError{KV{Key: string(k.Key), Value: k.Value, ModRevision: k.ModRevision}}
}

// KV is one stored object and its revisions.
type KV struct {
	Key         string
	Value       []byte
	ModRevision int64
}

// Observer is told how long each etcd call took (for metrics). May be nil.
type Observer func(op string, d time.Duration, err error)

// Store is an etcd-backed key/value store for API objects.
type Store struct {
	client  *clientv3.Client
	observe Observer
}

// New returns a Store on an established etcd client.
func New(client *clientv3.Client, observe Observer) *Store {
	if observe == nil {
		observe = func(string, time.Duration, error) {}
	}
	return &Store{client: client, observe: observe}
}

// Client returns the underlying etcd client.
func (s *Store) Client() *clientv3.Client { return s.client }

// timed records one request when its function returns; err points at the
// function's named result so the outcome is the final one (a deferred call
// evaluates plain arguments when the defer statement runs).
func (s *Store) timed(op string, start time.Time, err *error) {
	s.observe(op, time.Since(start), *err)
}

// Get returns the object at key.
func (s *Store) Get(ctx context.Context, key string) (KV, error) {
	kv, _, err := s.GetWithRevision(ctx, key)
	return kv, err
}

// GetWithRevision is Get that also returns etcd's revision at the read
// (also with ErrNotFound), so a reader asked for a version not older
// than some revision can tell whether etcd has reached it.
func (s *Store) GetWithRevision(ctx context.Context, key string) (kv KV, rev int64, err error) {
	defer s.timed("get", time.Now(), &err)
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return KV{}, 0, err
	}
	if len(resp.Kvs) == 0 {
		return KV{}, resp.Header.Revision, ErrNotFound
	}
	k := resp.Kvs[0]
	return KV{Key: string(k.Key), Value: k.Value, ModRevision: k.ModRevision}, resp.Header.Revision, nil
}

// Create stores value at key if nothing is there yet and returns the new revision.
func (s *Store) Create(ctx context.Context, key string, value []byte) (rev int64, err error) {
	defer s.timed("create", time.Now(), &err)
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(value))).Commit()
	if err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		return 0, ErrExists
	}
	return resp.Header.Revision, nil
}

// Update replaces the value at key if its mod revision is still modRev. A
// failed compare returns a *ConflictError with the current value.
func (s *Store) Update(ctx context.Context, key string, value []byte, modRev int64) (rev int64, err error) {
	defer s.timed("update", time.Now(), &err)
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).
		Then(clientv3.OpPut(key, string(value))).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		return 0, conflictOrNotFound(resp)
	}
	return resp.Header.Revision, nil
}

// Delete removes key if its mod revision is still modRev (0: unconditionally)
// and returns the revision of the deletion. A failed compare returns a
// *ConflictError with the current value.
func (s *Store) Delete(ctx context.Context, key string, modRev int64) (rev int64, err error) {
	defer s.timed("delete", time.Now(), &err)
	cmp := clientv3.Compare(clientv3.ModRevision(key), "=", modRev)
	if modRev == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(key), ">", 0)
	}
	resp, err := s.client.Txn(ctx).If(cmp).Then(clientv3.OpDelete(key)).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		return 0, conflictOrNotFound(resp)
	}
	return resp.Header.Revision, nil
}

// ListOptions selects a page of a prefix.
type ListOptions struct {
	// Revision reads the prefix as of that revision (0: latest).
	Revision int64
	// StartKey continues a previous page (inclusive); empty: from the prefix start.
	StartKey string
	// Limit caps the number of keys returned (0: all).
	Limit int64
}

// ListResult is one page of a prefix.
type ListResult struct {
	KVs      []KV
	Revision int64 // the revision the page was read at
	More     bool  // there are keys after the last one returned
	// Remaining counts the keys after this page.
	Remaining int64
}

// List reads the keys under prefix.
func (s *Store) List(ctx context.Context, prefix string, o ListOptions) (res ListResult, err error) {
	defer s.timed("list", time.Now(), &err)
	start := prefix
	if o.StartKey != "" {
		start = o.StartKey
	}
	opts := []clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix))}
	if o.Revision > 0 {
		opts = append(opts, clientv3.WithRev(o.Revision))
	}
	if o.Limit > 0 {
		opts = append(opts, clientv3.WithLimit(o.Limit))
	}
	resp, err := s.client.Get(ctx, start, opts...)
	if err != nil {
		if errors.Is(err, rpctypes.ErrCompacted) {
			return ListResult{}, fmt.Errorf("%w: %v", ErrCompacted, err)
		}
		return ListResult{}, err
	}
	res.Revision = resp.Header.Revision
	if o.Revision > 0 {
		res.Revision = o.Revision
	}
	res.More = resp.More
	res.Remaining = resp.Count - int64(len(resp.Kvs))
	for _, k := range resp.Kvs {
		res.KVs = append(res.KVs, KV{Key: string(k.Key), Value: k.Value, ModRevision: k.ModRevision})
	}
	return res, nil
}

// CurrentRevision returns etcd's latest revision.
func (s *Store) CurrentRevision(ctx context.Context) (int64, error) {
	resp, err := s.client.Get(ctx, "/registry/revision-probe", clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// EventType is the kind of change a watch reports.
type EventType int

// Watch event types.
const (
	Put EventType = iota
	Deleted
)

// Event is one change under a watched prefix. For deletions Value is the
// last stored value (PrevValue) so the deleted object can be reported.
type Event struct {
	Type     EventType
	Key      string
	Value    []byte
	Revision int64
	Created  bool // a Put that created the key
}

// Watch streams changes under prefix with revisions greater than fromRev. The
// channel closes when ctx ends or the watch fails; a failure is sent as the
// error on errc first (ErrCompacted when fromRev is older than etcd keeps).
func (s *Store) Watch(ctx context.Context, prefix string, fromRev int64) (<-chan Event, <-chan error) {
	out := make(chan Event, 100)
	errc := make(chan error, 1)
	go func() {
		defer close(out)
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		defer cancel()
		wch := s.client.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(fromRev+1), clientv3.WithPrevKV())
		for resp := range wch {
			if err := resp.Err(); err != nil {
				if resp.CompactRevision > 0 || errors.Is(err, rpctypes.ErrCompacted) {
					err = fmt.Errorf("%w (compacted at revision %d)", ErrCompacted, resp.CompactRevision)
				}
				errc <- err
				return
			}
			for _, ev := range resp.Events {
				e := Event{Key: string(ev.Kv.Key), Revision: ev.Kv.ModRevision, Value: ev.Kv.Value}
				if ev.Type == clientv3.EventTypeDelete {
					e.Type = Deleted
					if ev.PrevKv != nil {
						e.Value = ev.PrevKv.Value
					}
				} else {
					e.Created = ev.IsCreate()
				}
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
		if ctx.Err() == nil {
			errc <- errors.New("etcd watch closed")
		}
	}()
	return out, errc
}
