package registry

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/hoist-project/hoist/master/storage"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Reads honour resourceVersion as upstream: unset is the latest version
// (a linearizable etcd read), "0" any version (the watch cache's, which
// may lag a little), N a version not older than N: the watch cache's once
// it has reached N, else etcd's. Upstream waits up to 3 s for its cache
// to reach N instead; hoist's cache only advances with its own
// resource's changes, so a resourceVersion taken from another resource
// could keep it waiting, while etcd has the answer at once. A revision
// etcd itself has not reached is upstream's 504 "Too large resource
// version".

// tooLargeRVRetrySeconds is upstream's retry hint for that 504.
const tooLargeRVRetrySeconds = 1

// parseMinRV parses a resourceVersion a read must not be older than.
func parseMinRV(rv string) (int64, error) {
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n < 0 {
		return 0, apierrors.NewBadRequest(fmt.Sprintf("invalid resourceVersion %q", rv))
	}
	return n, nil
}

// tooLargeRV is upstream's answer to a read not older than want when the
// store is at current < want (storage.NewTooLargeResourceVersionError).
func tooLargeRV(want, current int64) error {
	err := apierrors.NewTimeoutError(fmt.Sprintf("Too large resource version: %d, current: %d", want, current), tooLargeRVRetrySeconds)
	err.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: metav1.CauseTypeResourceVersionTooLarge, Message: "Too large resource version"}}
	return err
}

// checkNotOlder fails a read made at revision read that was asked not to
// be older than want.
func checkNotOlder(want, read int64) error {
	if read < want {
		return tooLargeRV(want, read)
	}
	return nil
}

// GetAt returns one object as of resourceVersion rv (see above). A
// missing object is 404 whichever source answered.
func (s *Store) GetAt(ctx context.Context, ns, name, rv string) (runtime.Object, error) {
	if rv == "" {
		return s.Get(ctx, ns, name)
	}
	want, err := parseMinRV(rv)
	if err != nil {
		return nil, err
	}
	key := s.key(ns, name)
	if kv, found, fresh := s.cache.GetFresh(key, want); fresh {
		if !found {
			return nil, s.storageErr(storage.ErrNotFound, name)
		}
		obj, err := s.decodeCached(key, kv)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		return obj, nil
	}
	kv, read, err := s.etcd.GetWithRevision(ctx, key)
	if err == nil || errors.Is(err, storage.ErrNotFound) {
		if terr := checkNotOlder(want, read); terr != nil {
			return nil, terr
		}
	}
	if err != nil {
		return nil, s.storageErr(err, name)
	}
	return s.decodeRead(kv)
}
