package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hoist-project/hoist/master/storage"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Store is the generic typed store of one Resource.
type Store struct {
	Res    *Resource
	scheme *runtime.Scheme
	etcd   *storage.Store
	cache  *storage.Cacher
	prefix string // /registry/<resource>/
	now    func() time.Time
	gets   getMemo // CachedGet's recent decodes
}

// NewStore returns the store of res. Its watch cache starts with Run.
func NewStore(res *Resource, scheme *runtime.Scheme, etcd *storage.Store) *Store {
	s := &Store{Res: res, scheme: scheme, etcd: etcd, prefix: "/registry/" + res.Name + "/", now: time.Now}
	s.cache = storage.NewCacher(etcd, s.prefix, storage.Codec{
		Decode: func(_ string, v []byte, rev int64) (any, error) { return s.decode(v, rev) },
		Attrs:  func(obj any) any { return s.attrsOf(obj.(runtime.Object)) },
	}, 1000)
	return s
}

// Run feeds the watch cache until ctx ends.
func (s *Store) Run(ctx context.Context) { s.cache.Run(ctx) }

// WaitReady waits until the watch cache holds its first list.
func (s *Store) WaitReady(ctx context.Context) error {
	_, err := s.cache.Revision(ctx)
	return err
}

// Cache exposes the watch cache (for metrics).
func (s *Store) Cache() *storage.Cacher { return s.cache }

func (s *Store) key(ns, name string) string {
	if s.Res.Namespaced {
		return s.prefix + ns + "/" + name
	}
	return s.prefix + name
}

func (s *Store) keyPrefix(ns string) string {
	if s.Res.Namespaced && ns != "" {
		return s.prefix + ns + "/"
	}
	return s.prefix
}

func setRV(obj runtime.Object, rev int64) error {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	acc.SetResourceVersion(strconv.FormatInt(rev, 10))
	return nil
}

// storageErr maps a storage error to an API status error.
func (s *Store) storageErr(err error, name string) error {
	gr := s.Res.GroupVersionResource().GroupResource()
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return apierrors.NewNotFound(gr, name)
	case errors.Is(err, storage.ErrExists):
		return apierrors.NewAlreadyExists(gr, name)
	case errors.Is(err, storage.ErrConflict):
		return apierrors.NewConflict(gr, name, errors.New(OptimisticLockMsg))
	case errors.Is(err, storage.ErrCompacted), errors.Is(err, storage.ErrTooOld):
		return apierrors.NewResourceExpired(err.Error())
	case errors.Is(err, rpctypes.ErrRequestTooLarge), strings.Contains(err.Error(), "request is too large"),
		strings.Contains(err.Error(), "ResourceExhausted"):
		return apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("%s %q is too large for etcd: %v", s.Res.Kind, name, err))
	}
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		return err
	}
	return apierrors.NewInternalError(err)
}

// OptimisticLockMsg is upstream's text for a stale resourceVersion.
const OptimisticLockMsg = "the object has been modified; please apply your changes to the latest version and try again"

func (s *Store) decode(value []byte, rev int64) (runtime.Object, error) {
	return decodeFromStorage(s.scheme, s.Res.GroupVersionKind(), value, rev)
}

// Get returns one object from etcd.
func (s *Store) Get(ctx context.Context, ns, name string) (runtime.Object, error) {
	kv, err := s.etcd.Get(ctx, s.key(ns, name))
	if err != nil {
		return nil, s.storageErr(err, name)
	}
	return s.decodeRead(kv)
}

// decodeRead decodes an object read for a client: a stored value that does
// not decode is the server's fault (500).
func (s *Store) decodeRead(kv storage.KV) (runtime.Object, error) {
	obj, err := s.decode(kv.Value, kv.ModRevision)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return obj, nil
}

// CachedGet returns an object from the watch cache, which may lag etcd a
// little: for checks where a miss falls back to Get. Each call returns a
// new object.
func (s *Store) CachedGet(ns, name string) (runtime.Object, bool) {
	key := s.key(ns, name)
	kv, ok := s.cache.Get(key)
	if !ok {
		return nil, false
	}
	obj, err := s.decodeCached(key, kv)
	return obj, err == nil
}

// Create validates and stores a new object in namespace ns.
func (s *Store) Create(ctx context.Context, ns string, obj runtime.Object, dryRun bool) (runtime.Object, error) {
	out, _, err := s.CreateJSON(ctx, ns, obj, dryRun)
	return out, err
}

// CreateJSON is Create that also returns the created object's JSON
// encoding (what json.Marshal of the returned object gives), encoded
// once with the stored value. It is nil for dry runs.
func (s *Store) CreateJSON(ctx context.Context, ns string, obj runtime.Object, dryRun bool) (runtime.Object, []byte, error) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil, apierrors.NewBadRequest(err.Error())
	}
	if err := s.prepareMetaForCreate(acc, ns); err != nil {
		return nil, nil, err
	}
	if s.Res.HasStatus && s.Res.Kind != "Node" {
		if err := resetField(obj, "status"); err != nil {
			return nil, nil, apierrors.NewInternalError(err)
		}
	}
	if hasField(obj, "spec") {
		acc.SetGeneration(1)
	}
	s.Res.Strategy.PrepareForCreate(obj)
	errs := append(s.validateMeta(acc), s.Res.Strategy.Validate(obj)...)
	if len(errs) > 0 {
		return nil, nil, apierrors.NewInvalid(s.Res.GroupVersionKind().GroupKind(), acc.GetName(), errs)
	}
	enc, ok, err := encodeOnce(obj, s.Res.GroupVersionKind())
	if err != nil {
		return nil, nil, apierrors.NewInternalError(err)
	}
	var data []byte
	if ok {
		data = enc.stored()
	} else if data, err = encodeForStorage(obj, s.Res.GroupVersionKind()); err != nil {
		return nil, nil, apierrors.NewInternalError(err)
	}
	if dryRun {
		return obj, nil, nil
	}
	rev, err := s.etcd.Create(ctx, s.key(ns, acc.GetName()), data)
	if err != nil {
		return nil, nil, s.storageErr(err, acc.GetName())
	}
	acc.SetResourceVersion(strconv.FormatInt(rev, 10))
	if !ok {
		return obj, nil, nil
	}
	return obj, enc.withRV(rev), nil
}

// UpdateFunc computes the new object from the stored one. Returning
// (nil, nil) means "nothing to change".
type UpdateFunc func(old runtime.Object) (runtime.Object, error)

// state is the stored object a read-modify-write starts from.
type state struct {
	kv storage.KV
	// fromCache: read from the watch cache, which may lag etcd. A write
	// based on it is still exact (it compares the mod revision), but a
	// decision not to write (an error, a no-op, a failed precondition)
	// must be taken again on etcd's value.
	fromCache bool
}

// readState returns the object at key: from the watch cache when cached
// is set and the cache has it, otherwise from etcd.
func (s *Store) readState(ctx context.Context, key string, cached bool) (state, error) {
	if cached {
		if kv, ok := s.cache.Get(key); ok {
			return state{kv, true}, nil
		}
	}
	kv, err := s.etcd.Get(ctx, key)
	return state{kv: kv}, err
}

// GuaranteedUpdate applies fn to the stored object and writes the result,
// retrying on conflicts when preconditionRV is empty. The first attempt
// starts from the watch cache and writes with a compare on the cached mod
// revision: one etcd round trip when the cache is current. A failed
// compare returns etcd's current value in the same transaction, which the
// next attempt uses.
func (s *Store) GuaranteedUpdate(ctx context.Context, ns, name, subresource string, dryRun bool, preconditionRV string, fn UpdateFunc) (runtime.Object, error) {
	key := s.key(ns, name)
	st, err := s.readState(ctx, key, !dryRun)
	// reread replaces a cached state with etcd's, reporting whether it did.
	reread := func() bool {
		if !st.fromCache {
			return false
		}
		st, err = s.readState(ctx, key, false)
		return true
	}
	for attempt := 0; ; attempt++ {
		if err != nil {
			return nil, s.storageErr(err, name)
		}
		old, derr := s.decode(st.kv.Value, st.kv.ModRevision)
		if derr != nil {
			return nil, apierrors.NewInternalError(derr)
		}
		if preconditionRV != "" && preconditionRV != strconv.FormatInt(st.kv.ModRevision, 10) {
			if reread() {
				continue
			}
			return nil, s.storageErr(storage.ErrConflict, name)
		}
		obj, ferr := fn(old.DeepCopyObject())
		if ferr == nil && obj != nil {
			ferr = s.prepareUpdate(obj, old, subresource)
		}
		if ferr != nil || obj == nil {
			if reread() {
				continue
			}
			if ferr != nil {
				return nil, ferr
			}
			return old, nil
		}
		acc, _ := meta.Accessor(obj)
		if dryRun {
			return obj, nil
		}
		var rev int64
		var werr error
		if s.readyToDelete(obj, acc) {
			rev, werr = s.etcd.Delete(ctx, key, st.kv.ModRevision)
		} else {
			data, eerr := encodeForStorage(obj, s.Res.GroupVersionKind())
			if eerr != nil {
				return nil, apierrors.NewInternalError(eerr)
			}
			if string(data) == string(st.kv.Value) {
				if reread() {
					continue
				}
				return old, nil // no-op update: keep the resourceVersion, as upstream
			}
			rev, werr = s.etcd.Update(ctx, key, data, st.kv.ModRevision)
		}
		var ce *storage.ConflictError
		if errors.As(werr, &ce) && preconditionRV == "" && attempt < 10 {
			st = state{kv: ce.Current}
			continue
		}
		if werr != nil {
			return nil, s.storageErr(werr, name)
		}
		_ = setRV(obj, rev)
		return obj, nil
	}
}

func (s *Store) prepareUpdate(obj, old runtime.Object, subresource string) error {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return apierrors.NewBadRequest(err.Error())
	}
	oldAcc, _ := meta.Accessor(old)
	if subresource == "finalize" {
		// Only spec (a namespace's finalizers) changes.
		sp, err := getField(obj, "spec")
		if err != nil {
			return apierrors.NewInternalError(err)
		}
		n := old.DeepCopyObject()
		if err := setField(n, "spec", sp); err != nil {
			return apierrors.NewInternalError(err)
		}
		copyInto(obj, n)
	} else if subresource == "status" {
		// Only status (and, as upstream, nothing of metadata) changes.
		st, err := getField(obj, "status")
		if err != nil {
			return apierrors.NewInternalError(err)
		}
		n := old.DeepCopyObject()
		if err := setField(n, "status", st); err != nil {
			return apierrors.NewInternalError(err)
		}
		copyInto(obj, n)
	} else if s.Res.HasStatus {
		st, err := getField(old, "status")
		if err != nil {
			return apierrors.NewInternalError(err)
		}
		if err := setField(obj, "status", st); err != nil {
			return apierrors.NewInternalError(err)
		}
	}
	keepImmutableMeta(acc, oldAcc)
	if changed, err := fieldChanged(obj, old, "spec"); err != nil {
		return apierrors.NewInternalError(err)
	} else if changed {
		acc.SetGeneration(oldAcc.GetGeneration() + 1)
	}
	if oldAcc.GetDeletionTimestamp() != nil && len(acc.GetFinalizers()) > len(oldAcc.GetFinalizers()) {
		return apierrors.NewForbidden(s.Res.GroupVersionResource().GroupResource(), acc.GetName(),
			errors.New("no new finalizers can be added if the object is being deleted"))
	}
	s.Res.Strategy.PrepareForUpdate(obj, old)
	errs := s.validateMeta(acc)
	errs = append(errs, s.Res.Strategy.Validate(obj)...)
	errs = append(errs, s.Res.Strategy.ValidateUpdate(obj, old)...)
	if len(errs) > 0 {
		return apierrors.NewInvalid(s.Res.GroupVersionKind().GroupKind(), acc.GetName(), errs)
	}
	return nil
}

// readyToDelete: an object being deleted whose finalizers are all gone and
// whose grace period is over is removed by the update that cleared them.
func (s *Store) readyToDelete(obj runtime.Object, acc metav1.Object) bool {
	if acc.GetDeletionTimestamp() == nil || len(acc.GetFinalizers()) > 0 || s.holdsDeletion(obj) {
		return false
	}
	g := acc.GetDeletionGracePeriodSeconds()
	return g == nil || *g == 0
}

// DeleteOptions of one deletion.
type DeleteOptions struct {
	GracePeriodSeconds *int64
	Preconditions      *metav1.Preconditions
	DryRun             bool
	// Graceful returns the grace period to apply to obj (0: delete now);
	// nil means every deletion is immediate.
	Graceful func(obj runtime.Object, requested *int64) int64
	// Propagation is how the garbage collector treats dependents: Orphan
	// and Foreground add the "orphan" / "foregroundDeletion" finalizer
	// (removing the other one); Background removes both; "" keeps the
	// object's finalizers as they are.
	Propagation metav1.DeletionPropagation
}

// propagationFinalizers returns finalizers adjusted to policy and whether
// they changed.
func propagationFinalizers(finalizers []string, policy metav1.DeletionPropagation) ([]string, bool) {
	var add, drop []string
	switch policy {
	case metav1.DeletePropagationOrphan:
		add, drop = []string{metav1.FinalizerOrphanDependents}, []string{metav1.FinalizerDeleteDependents}
	case metav1.DeletePropagationForeground:
		add, drop = []string{metav1.FinalizerDeleteDependents}, []string{metav1.FinalizerOrphanDependents}
	case metav1.DeletePropagationBackground:
		drop = []string{metav1.FinalizerOrphanDependents, metav1.FinalizerDeleteDependents}
	default:
		return finalizers, false
	}
	out := slices.DeleteFunc(slices.Clone(finalizers), func(f string) bool { return slices.Contains(drop, f) })
	for _, f := range add {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, !slices.Equal(out, finalizers)
}

// Delete deletes an object, or marks it for deletion when it has finalizers
// or a grace period. It returns the object and whether it is gone now. Like
// GuaranteedUpdate it starts from the watch cache and compares the mod
// revision it read.
func (s *Store) Delete(ctx context.Context, ns, name string, o DeleteOptions) (runtime.Object, bool, error) {
	key := s.key(ns, name)
	gr := s.Res.GroupVersionResource().GroupResource()
	st, err := s.readState(ctx, key, !o.DryRun)
	reread := func() bool {
		if !st.fromCache {
			return false
		}
		st, err = s.readState(ctx, key, false)
		return true
	}
	for attempt := 0; ; attempt++ {
		if err != nil {
			return nil, false, s.storageErr(err, name)
		}
		obj, derr := s.decode(st.kv.Value, st.kv.ModRevision)
		if derr != nil {
			return nil, false, apierrors.NewInternalError(derr)
		}
		acc, _ := meta.Accessor(obj)
		if p := o.Preconditions; p != nil {
			var perr error
			if p.UID != nil && string(acc.GetUID()) != string(*p.UID) {
				perr = apierrors.NewConflict(gr, name,
					fmt.Errorf("precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, acc.GetUID()))
			} else if p.ResourceVersion != nil && acc.GetResourceVersion() != *p.ResourceVersion {
				perr = apierrors.NewConflict(gr, name,
					fmt.Errorf("precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *p.ResourceVersion, acc.GetResourceVersion()))
			}
			if perr != nil {
				if reread() {
					continue
				}
				return nil, false, perr
			}
		}
		var grace int64
		if o.Graceful != nil {
			grace = o.Graceful(obj, o.GracePeriodSeconds)
		}
		finalizers, finalizersChanged := propagationFinalizers(acc.GetFinalizers(), o.Propagation)
		acc.SetFinalizers(finalizers)
		var rev int64
		var werr error
		gone := grace == 0 && len(acc.GetFinalizers()) == 0 && !s.holdsDeletion(obj)
		if gone {
			if o.DryRun {
				return obj, true, nil
			}
			rev, werr = s.etcd.Delete(ctx, key, st.kv.ModRevision)
		} else {
			// Graceful: record the deletion and let finalizers / the kubelet finish it.
			g := acc.GetDeletionGracePeriodSeconds()
			restart := acc.GetDeletionTimestamp() == nil || (g != nil && *g > grace)
			if !restart && !finalizersChanged {
				if reread() {
					continue
				}
				return obj, false, nil // already being deleted, no shorter grace period
			}
			if restart {
				now := metav1.NewTime(s.now().Add(time.Duration(grace) * time.Second))
				acc.SetDeletionTimestamp(&now)
				acc.SetDeletionGracePeriodSeconds(&grace)
				if s.Res.StartDeletion != nil {
					s.Res.StartDeletion(obj)
				}
			}
			if o.DryRun {
				return obj, false, nil
			}
			data, eerr := encodeForStorage(obj, s.Res.GroupVersionKind())
			if eerr != nil {
				return nil, false, apierrors.NewInternalError(eerr)
			}
			rev, werr = s.etcd.Update(ctx, key, data, st.kv.ModRevision)
		}
		var ce *storage.ConflictError
		if errors.As(werr, &ce) && attempt < 10 {
			st = state{kv: ce.Current}
			continue
		}
		if werr != nil {
			return nil, false, s.storageErr(werr, name)
		}
		_ = setRV(obj, rev)
		return obj, gone, nil
	}
}

func (s *Store) holdsDeletion(obj runtime.Object) bool {
	return s.Res.HoldsDeletion != nil && s.Res.HoldsDeletion(obj)
}

// continueToken is the opaque ?continue= value, in upstream's shape.
type continueToken struct {
	APIVersion      string `json:"v"`
	ResourceVersion int64  `json:"rv"`
	StartKey        string `json:"start"`
}

func encodeContinue(rv int64, startKey string) string {
	b, _ := json.Marshal(continueToken{"meta.k8s.io/v1", rv, startKey})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(s string) (continueToken, error) {
	var t continueToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || t.APIVersion != "meta.k8s.io/v1" || t.ResourceVersion <= 0 {
		return t, apierrors.NewBadRequest("invalid continue token")
	}
	return t, nil
}

// NewList returns an empty typed list of the resource's kind.
func (s *Store) NewList() (runtime.Object, error) {
	l, err := s.scheme.New(s.Res.GroupVersion.WithKind(s.Res.Kind + "List"))
	if err == nil {
		l.GetObjectKind().SetGroupVersionKind(s.Res.GroupVersion.WithKind(s.Res.Kind + "List"))
	}
	return l, err
}
