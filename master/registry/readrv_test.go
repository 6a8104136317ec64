package registry

import (
	"reflect"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestIntegrationGetAtResourceVersion: GET's resourceVersion as upstream.
// "0" is the watch cache's (no etcd read, and stale once the cache is
// frozen on purpose), unset is etcd's, N is the cache's once it has N and
// otherwise etcd's; a revision etcd has not reached is 504, for GET and
// for a NotOlderThan list alike.
func TestIntegrationGetAtResourceVersion(t *testing.T) {
	var etcdGets atomic.Int64
	st, stopCache := observedConfigMapStore(t, func(op string, _ time.Duration, _ error) {
		if op == "get" {
			etcdGets.Add(1)
		}
	})
	ctx := ctxT(t)
	created := createCounter(t, st, "a")
	rv1 := created.ResourceVersion
	waitCached(t, st, "a", rv1)

	// getAt reads name at rv and reports how many etcd reads it took.
	getAt := func(name, rv string) (obj runtime.Object, reads int64, err error) {
		before := etcdGets.Load()
		obj, err = st.GetAt(ctx, "default", name, rv)
		return obj, etcdGets.Load() - before, err
	}
	wantRV := func(what string, obj runtime.Object, err error, rv string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := obj.(*corev1.ConfigMap).ResourceVersion; got != rv {
			t.Fatalf("%s: resourceVersion %s, want %s", what, got, rv)
		}
	}

	for _, rv := range []string{"0", rv1} {
		obj, reads, err := getAt("a", rv)
		wantRV("rv="+rv, obj, err, rv1)
		if reads != 0 {
			t.Errorf("rv=%s read etcd %d times, want the watch cache only", rv, reads)
		}
	}
	obj, reads, err := getAt("a", "")
	wantRV("no rv", obj, err, rv1)
	if reads != 1 {
		t.Errorf("no rv read etcd %d times, want 1", reads)
	}

	// A missing object is the same 404 from the cache as from etcd.
	_, reads, cacheErr := getAt("nope", "0")
	_, etcdErr := st.Get(ctx, "default", "nope")
	if !apierrors.IsNotFound(cacheErr) || reads != 0 {
		t.Fatalf("missing at rv=0: %v after %d etcd reads, want a 404 from the cache", cacheErr, reads)
	}
	cs, es := cacheErr.(apierrors.APIStatus).Status(), etcdErr.(apierrors.APIStatus).Status()
	if cs.Message != `configmaps "nope" not found` || cs.Message != es.Message || cs.Reason != es.Reason || !reflect.DeepEqual(cs.Details, es.Details) {
		t.Fatalf("404 from the cache %+v differs from etcd's %+v", cs, es)
	}

	// Freeze the cache, then change the object in etcd.
	stopCache()
	updated, err := st.GuaranteedUpdate(ctx, "default", "a", "", false, "", func(old runtime.Object) (runtime.Object, error) {
		cm := old.(*corev1.ConfigMap)
		cm.Annotations[counterKey] = "1"
		return cm, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rv2 := updated.(*corev1.ConfigMap).ResourceVersion
	obj, reads, err = getAt("a", "0")
	wantRV("rv=0 from the frozen cache", obj, err, rv1)
	if reads != 0 {
		t.Errorf("rv=0 on a frozen cache read etcd %d times", reads)
	}
	// Ahead of the cache: etcd answers at once, not older than asked.
	obj, reads, err = getAt("a", rv2)
	wantRV("rv ahead of the cache", obj, err, rv2)
	if reads != 1 {
		t.Errorf("rv ahead of the cache read etcd %d times, want 1", reads)
	}

	// Ahead of etcd: upstream's 504, for GET and NotOlderThan lists.
	n2, _ := strconv.ParseInt(rv2, 10, 64)
	future := strconv.FormatInt(n2+1000, 10)
	_, _, getErr := getAt("a", future)
	all, _ := st.ParseFilter("", "")
	_, listErr := st.List(ctx, "default", ListOptions{Filter: all, ResourceVersion: future, ResourceVersionMatch: "NotOlderThan"})
	for what, err := range map[string]error{"get": getErr, "list": listErr} {
		se, ok := err.(apierrors.APIStatus)
		if !ok {
			t.Fatalf("%s ahead of etcd: %v, want a status error", what, err)
		}
		s := se.Status()
		if s.Code != 504 || s.Reason != metav1.StatusReasonTimeout ||
			s.Message != "Timeout: Too large resource version: "+future+", current: "+rv2 ||
			s.Details.RetryAfterSeconds != 1 || len(s.Details.Causes) != 1 ||
			s.Details.Causes[0].Type != metav1.CauseTypeResourceVersionTooLarge {
			t.Fatalf("%s ahead of etcd: %+v %+v", what, s, s.Details)
		}
	}
	list, err := st.List(ctx, "default", ListOptions{Filter: all, ResourceVersion: rv2, ResourceVersionMatch: "NotOlderThan"})
	if err != nil || list.(*corev1.ConfigMapList).Items[0].ResourceVersion != rv2 {
		t.Fatalf("NotOlderThan list ahead of the cache: %v %v", list, err)
	}

	if _, _, err := getAt("a", "abc"); !apierrors.IsBadRequest(err) {
		t.Fatalf("rv=abc: %v, want 400", err)
	}
}

func TestListMinRV(t *testing.T) {
	cases := []struct {
		o    ListOptions
		want int64
		ok   bool
	}{
		{ListOptions{}, 0, false},
		{ListOptions{ResourceVersion: "0"}, 0, false},
		{ListOptions{ResourceVersion: "7"}, 7, true},
		{ListOptions{ResourceVersion: "7", ResourceVersionMatch: "NotOlderThan"}, 7, true},
		{ListOptions{ResourceVersion: "7", ResourceVersionMatch: "NotOlderThan", Limit: 5}, 7, true},
		{ListOptions{ResourceVersion: "7", Limit: 5}, 0, false}, // upstream: Exact
		{ListOptions{ResourceVersion: "7", ResourceVersionMatch: "Exact"}, 0, false},
		{ListOptions{ResourceVersion: "7", Continue: "tok"}, 0, false},
		{ListOptions{ResourceVersion: "x"}, 0, false},
	}
	for _, c := range cases {
		if got, ok := listMinRV(c.o); got != c.want || ok != c.ok {
			t.Errorf("%+v: got %d %v, want %d %v", c.o, got, ok, c.want, c.ok)
		}
	}
}
