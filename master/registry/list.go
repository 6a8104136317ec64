package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hoist-project/hoist/master/storage"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// Filter is a parsed label and field selector.
type Filter struct {
	Labels labels.Selector
	Fields fields.Selector
}

// ParseFilter parses the selectors of a list or watch, rejecting field
// labels the resource does not support (as upstream, with a 400).
func (s *Store) ParseFilter(labelSel, fieldSel string) (Filter, error) {
	f := Filter{Labels: labels.Everything(), Fields: fields.Everything()}
	var err error
	if labelSel != "" {
		if f.Labels, err = labels.Parse(labelSel); err != nil {
			return f, apierrors.NewBadRequest(fmt.Sprintf("unable to parse requirement: %v", err))
		}
	}
	if fieldSel != "" {
		if f.Fields, err = fields.ParseSelector(fieldSel); err != nil {
			return f, apierrors.NewBadRequest(fmt.Sprintf("invalid field selector: %v", err))
		}
		for _, r := range f.Fields.Requirements() {
			if !s.supportsField(r.Field) {
				return f, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", r.Field))
			}
		}
	}
	return f, nil
}

func (s *Store) supportsField(label string) bool {
	if label == "metadata.name" || (label == "metadata.namespace" && s.Res.Namespaced) {
		return true
	}
	for _, l := range s.Res.FieldLabels {
		if l == label {
			return true
		}
	}
	return false
}

// attrs are what selectors match on: the watch cache keeps them beside
// each encoded object, so filtering needs no decoding.
type attrs struct {
	labels labels.Set
	fields fieldList
}

// fieldList is a fields.Fields of alternating names and values: a map
// would cost several times the memory for its few entries.
type fieldList []string

func (l fieldList) Has(field string) bool {
	for i := 0; i < len(l); i += 2 {
		if l[i] == field {
			return true
		}
	}
	return false
}

func (l fieldList) Get(field string) string {
	for i := 0; i < len(l); i += 2 {
		if l[i] == field {
			return l[i+1]
		}
	}
	return ""
}

// attrsOf returns obj's labels and selectable fields (nil if obj has no
// metadata, which then matches nothing).
func (s *Store) attrsOf(obj runtime.Object) *attrs {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil
	}
	var extra fields.Set
	if s.Res.Fields != nil {
		extra = s.Res.Fields(obj)
	}
	l := make(fieldList, 0, 4+2*len(extra))
	l = append(l, "metadata.name", acc.GetName())
	if s.Res.Namespaced {
		l = append(l, "metadata.namespace", acc.GetNamespace())
	}
	for k, v := range extra {
		l = append(l, k, v)
	}
	return &attrs{labels: acc.GetLabels(), fields: l}
}

// matchAttrs reports whether an object with attributes a passes the filter.
func matchAttrs(f Filter, a *attrs) bool {
	return a != nil && f.Labels.Matches(a.labels) && (f.Fields.Empty() || f.Fields.Matches(a.fields))
}

// cacheMatcher is f as a watch cache attribute matcher (nil: everything).
func cacheMatcher(f Filter) func(any) bool {
	if f.Labels.Empty() && f.Fields.Empty() {
		return nil
	}
	return func(a any) bool { return matchAttrs(f, a.(*attrs)) }
}

// Matches reports whether obj passes the filter.
func (s *Store) Matches(f Filter, obj runtime.Object) bool {
	return matchAttrs(f, s.attrsOf(obj))
}

// ListOptions of one list call.
type ListOptions struct {
	Filter               Filter
	Limit                int64
	Continue             string
	ResourceVersion      string
	ResourceVersionMatch string
}

// List returns a typed list. RV "0" (without Exact), and N with
// NotOlderThan once the watch cache has reached N, are served from the
// cache; everything else reads etcd, paginated (see readrv.go).
func (s *Store) List(ctx context.Context, ns string, o ListOptions) (runtime.Object, error) {
	list, err := s.NewList()
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	var items []runtime.Object
	var lm metav1.ListMeta
	rvMatch := metav1.ResourceVersionMatch(o.ResourceVersionMatch)
	if o.Continue != "" && o.ResourceVersion != "" && o.ResourceVersion != "0" {
		return nil, apierrors.NewBadRequest("specifying resourceVersion is not allowed when using continue")
	}
	switch {
	case o.Continue == "" && (o.ResourceVersion == "0" || (o.ResourceVersion != "" && rvMatch == metav1.ResourceVersionMatchNotOlderThan && s.cacheAtLeast(ctx, o.ResourceVersion))):
		// The cache filters on attributes and decodes only what matches,
		// into new objects.
		objs, rev, err := s.cache.List(ctx, s.keyPrefix(ns), cacheMatcher(o.Filter))
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		items = make([]runtime.Object, 0, len(objs))
		for _, x := range objs {
			items = append(items, x.(runtime.Object))
		}
		lm.ResourceVersion = strconv.FormatInt(rev, 10)
	default:
		var rev int64
		if rvMatch == metav1.ResourceVersionMatchExact {
			if rev, err = strconv.ParseInt(o.ResourceVersion, 10, 64); err != nil || rev <= 0 {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid resourceVersion %q for resourceVersionMatch=Exact", o.ResourceVersion))
			}
		}
		items, lm, err = s.listEtcd(ctx, ns, o, rev)
		if err != nil {
			return nil, err
		}
		if want, ok := listMinRV(o); ok {
			read, _ := strconv.ParseInt(lm.ResourceVersion, 10, 64)
			if err := checkNotOlder(want, read); err != nil {
				return nil, err
			}
		}
	}
	if err := meta.SetList(list, items); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	la, _ := meta.ListAccessor(list)
	la.SetResourceVersion(lm.ResourceVersion)
	la.SetContinue(lm.Continue)
	la.SetRemainingItemCount(lm.RemainingItemCount)
	return list, nil
}

// listMinRV returns the revision a list read from etcd must not be older
// than: upstream's "not older than" cases, rv=N with NotOlderThan or with
// no match and no limit. A continued list reads its token's revision.
func listMinRV(o ListOptions) (int64, bool) {
	if o.Continue != "" || o.ResourceVersion == "" || o.ResourceVersion == "0" {
		return 0, false
	}
	match := metav1.ResourceVersionMatch(o.ResourceVersionMatch)
	if match != metav1.ResourceVersionMatchNotOlderThan && (match != "" || o.Limit > 0) {
		return 0, false
	}
	want, err := strconv.ParseInt(o.ResourceVersion, 10, 64)
	return want, err == nil
}

func (s *Store) cacheAtLeast(ctx context.Context, rv string) bool {
	want, err := strconv.ParseInt(rv, 10, 64)
	if err != nil {
		return false
	}
	rev, err := s.cache.Revision(ctx)
	return err == nil && rev >= want
}

// listEtcd reads pages from etcd until limit matching objects are found.
func (s *Store) listEtcd(ctx context.Context, ns string, o ListOptions, rev int64) ([]runtime.Object, metav1.ListMeta, error) {
	var lm metav1.ListMeta
	prefix := s.keyPrefix(ns)
	start := ""
	if o.Continue != "" {
		tok, err := decodeContinue(o.Continue)
		if err != nil {
			return nil, lm, err
		}
		rev = tok.ResourceVersion
		start = prefix + strings.TrimPrefix(tok.StartKey, "/")
		if !strings.HasPrefix(start, prefix) {
			return nil, lm, apierrors.NewBadRequest("invalid continue token")
		}
	}
	filtered := !o.Filter.Labels.Empty() || !o.Filter.Fields.Empty()
	var items []runtime.Object
	for {
		page := o.Limit
		if filtered && page > 0 && page < 100 {
			page = 100
		}
		res, err := s.etcd.List(ctx, prefix, storage.ListOptions{Revision: rev, StartKey: start, Limit: page})
		if err != nil {
			if errors.Is(err, storage.ErrCompacted) && o.Continue != "" {
				return nil, lm, apierrors.NewResourceExpired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
			}
			return nil, lm, s.storageErr(err, "")
		}
		rev = res.Revision
		var last string
		for i, kv := range res.KVs {
			obj, err := decodeFromStorage(s.scheme, s.Res.GroupVersionKind(), kv.Value, kv.ModRevision)
			if err != nil {
				return nil, lm, apierrors.NewInternalError(err)
			}
			last = kv.Key
			if !s.Matches(o.Filter, obj) {
				continue
			}
			items = append(items, obj)
			if o.Limit > 0 && int64(len(items)) == o.Limit {
				more := res.More || i < len(res.KVs)-1
				if more {
					lm.Continue = encodeContinue(rev, strings.TrimPrefix(last, prefix)+"\x00")
					if !filtered {
						rem := res.Remaining + int64(len(res.KVs)-1-i)
						lm.RemainingItemCount = &rem
					}
				}
				lm.ResourceVersion = strconv.FormatInt(rev, 10)
				return items, lm, nil
			}
		}
		if !res.More || len(res.KVs) == 0 {
			break
		}
		start = last + "\x00"
	}
	lm.ResourceVersion = strconv.FormatInt(rev, 10)
	return items, lm, nil
}

// WatchOptions of one watch call.
type WatchOptions struct {
	Filter            Filter
	ResourceVersion   string
	Bookmarks         bool
	BookmarkInterval  time.Duration
	SendInitialEvents bool
}

// Watch returns a stream of filtered events that ends with ctx. A
// resourceVersion older than the watch cache falls back to a direct etcd
// watch, which answers 410 Gone when etcd has compacted it. A watch that
// cannot go on ends with an ERROR event saying why.
func (s *Store) Watch(ctx context.Context, ns string, o WatchOptions) (EventStream, error) {
	var from int64
	if o.ResourceVersion != "" && o.ResourceVersion != "0" {
		var err error
		if from, err = strconv.ParseInt(o.ResourceVersion, 10, 64); err != nil || from < 0 {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid resourceVersion %q", o.ResourceVersion))
		}
	}
	wo := storage.WatchOptions{FromRevision: from, KeyPrefix: s.keyPrefix(ns), SendInitialEvents: o.SendInitialEvents,
		Match: cacheMatcher(o.Filter)}
	if o.Bookmarks {
		wo.BookmarkInterval = o.BookmarkInterval
	}
	cs, err := s.cache.Stream(ctx, wo)
	if err == nil {
		return &cacheEvents{ctx: ctx, s: s, filter: o.Filter, cs: cs}, nil
	}
	if !errors.Is(err, storage.ErrTooOld) {
		return nil, s.storageErr(err, "")
	}
	// Older than the cache's window: etcd still has it unless compacted.
	ctx, cancel := context.WithCancel(ctx)
	evc, errc, err := s.etcdWatch(ctx, ns, from)
	if err != nil {
		cancel()
		return nil, s.storageErr(err, "")
	}
	// Buffered so the server can write several ready events with one
	// flush when a watcher falls behind.
	out := make(chan watch.Event, 32)
	go func() {
		defer close(out)
		send := func(ev watch.Event) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for ev := range evc {
			if we, ok := s.filterEvent(o.Filter, ev); ok && !send(we) {
				return
			}
		}
		select {
		case err := <-errc:
			if err != nil && ctx.Err() == nil {
				send(s.errorEvent(err))
			}
		default:
		}
	}()
	return &chanEvents{ch: out, cancel: cancel}, nil
}

// filterEvent applies the selector, turning "stopped matching" into DELETED
// and "started matching" into ADDED, as upstream's cacher does.
func (s *Store) filterEvent(f Filter, ev storage.CacheEvent) (watch.Event, bool) {
	if ev.Type == storage.Bookmark {
		obj, _ := s.scheme.New(s.Res.GroupVersionKind())
		obj.GetObjectKind().SetGroupVersionKind(s.Res.GroupVersionKind())
		_ = setRV(obj, ev.Revision)
		if ev.InitialEventsEnd {
			acc, _ := meta.Accessor(obj)
			acc.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
		}
		return watch.Event{Type: watch.Bookmark, Object: obj}, true
	}
	shared := ev.Obj.(runtime.Object)
	cur := matchAttrs(f, ev.Attrs.(*attrs))
	var obj runtime.Object
	if ev.Memo != nil {
		obj = NewSharedObject(shared, ev.Memo)
	} else {
		obj = shared.DeepCopyObject()
	}
	prev := false
	if ev.PrevAttrs != nil {
		prev = matchAttrs(f, ev.PrevAttrs.(*attrs))
	}
	switch ev.Type {
	case storage.Removed:
		return watch.Event{Type: watch.Deleted, Object: obj}, cur
	case storage.Added:
		return watch.Event{Type: watch.Added, Object: obj}, cur
	}
	switch {
	case cur && prev:
		return watch.Event{Type: watch.Modified, Object: obj}, true
	case cur:
		return watch.Event{Type: watch.Added, Object: obj}, true
	case prev:
		return watch.Event{Type: watch.Deleted, Object: obj}, true
	}
	return watch.Event{}, false
}

// SharedObject is a watch event's object as the watch cache holds it,
// shared by every watcher of that event: it must not be modified. JSON
// encodes it once for all of them.
type SharedObject struct {
	runtime.Object
	memo *storage.Memo
}

// NewSharedObject wraps obj, whose encoding memo is memo.
func NewSharedObject(obj runtime.Object, memo *storage.Memo) *SharedObject {
	return &SharedObject{Object: obj, memo: memo}
}

type encoded struct {
	data []byte
	err  error
}

// JSON returns the object's JSON encoding, computed on first use.
func (o *SharedObject) JSON() ([]byte, error) {
	e := o.memo.Get(func() any {
		data, err := json.Marshal(o.Object)
		return encoded{data, err}
	}).(encoded)
	return e.data, e.err
}

// etcdWatch watches etcd directly from an old revision (no cache).
func (s *Store) etcdWatch(ctx context.Context, ns string, from int64) (<-chan storage.CacheEvent, <-chan error, error) {
	raw, rawErr := s.etcd.Watch(ctx, s.keyPrefix(ns), from)
	out := make(chan storage.CacheEvent)
	errc := make(chan error, 1)
	go func() {
		defer close(out)
		for ev := range raw {
			obj, err := decodeFromStorage(s.scheme, s.Res.GroupVersionKind(), ev.Value, ev.Revision)
			if err != nil {
				errc <- err
				return
			}
			a := s.attrsOf(obj)
			ce := storage.CacheEvent{Type: storage.Modified, Key: ev.Key, Obj: obj, Attrs: a, PrevAttrs: a, Revision: ev.Revision}
			if ev.Type == storage.Deleted {
				ce.Type = storage.Removed
			} else if ev.Created {
				ce.Type, ce.PrevAttrs = storage.Added, nil
			}
			select {
			case out <- ce:
			case <-ctx.Done():
				return
			}
		}
		select {
		case err := <-rawErr:
			errc <- err
		default:
		}
	}()
	return out, errc, nil
}
