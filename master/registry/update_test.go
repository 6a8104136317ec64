package registry

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hoist-project/hoist/master/storage"
	"github.com/hoist-project/hoist/master/storage/storagetest"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
)

const counterKey = "hoist.test/count"

// configMapStore returns the ConfigMap store on a fresh embedded etcd, its
// watch cache running until stopCache is called (the cache then keeps
// what it had: a stale cache, on purpose).
func configMapStore(t *testing.T) (st *Store, stopCache func()) {
	t.Helper()
	return observedConfigMapStore(t, nil)
}

// observedConfigMapStore is configMapStore whose etcd calls are reported
// to observe.
func observedConfigMapStore(t *testing.T, observe storage.Observer) (st *Store, stopCache func()) {
	t.Helper()
	var res *Resource
	for _, r := range Resources() {
		if r.Name == "configmaps" {
			res = r
		}
	}
	if res == nil {
		t.Fatal("no configmaps resource")
	}
	st = NewStore(res, scheme.Scheme, storage.New(storagetest.Client(t, storagetest.Embedded(t)), observe))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { st.Run(ctx); close(done) }()
	stopCache = func() { cancel(); <-done }
	t.Cleanup(stopCache)
	if err := st.WaitReady(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	return st, sync.OnceFunc(stopCache)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func createCounter(t *testing.T, st *Store, name string) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{counterKey: "0"}}}
	out, err := st.Create(ctxT(t), "default", cm, false)
	if err != nil {
		t.Fatal(err)
	}
	return out.(*corev1.ConfigMap)
}

func count(t *testing.T, obj runtime.Object) int {
	t.Helper()
	n, err := strconv.Atoi(obj.(*corev1.ConfigMap).Annotations[counterKey])
	if err != nil {
		t.Fatalf("counter annotation: %v", err)
	}
	return n
}

// waitCached waits until the watch cache holds name at revision rv.
func waitCached(t *testing.T, st *Store, name, rv string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if o, ok := st.CachedGet("default", name); ok && o.(*corev1.ConfigMap).ResourceVersion == rv {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("watch cache never reached %s at %s", name, rv)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIntegrationGuaranteedUpdateNoLostUpdates: concurrent read-modify-
// writes through the store, each retried until it succeeds, add up
// exactly, both server-side (fn increments the stored value) and
// client-side (the client computes from its own read, possibly a stale
// one from the watch cache, and sends its resourceVersion as a
// precondition: a stale one must be refused with 409, never applied).
func TestIntegrationGuaranteedUpdateNoLostUpdates(t *testing.T) {
	st, _ := configMapStore(t)
	ctx := ctxT(t)
	const workers, each = 8, 10
	for _, mode := range []string{"server-side", "client-side"} {
		t.Run(mode, func(t *testing.T) {
			created := createCounter(t, st, mode)
			waitCached(t, st, mode, created.ResourceVersion) // client-side reads start there
			var wg sync.WaitGroup
			var conflicts [workers]int
			errc := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range each {
						for {
							err := increment(ctx, st, mode)
							if apierrors.IsConflict(err) {
								conflicts[w]++
								continue
							}
							if err != nil {
								errc <- err
								return
							}
							break
						}
					}
				}()
			}
			wg.Wait()
			close(errc)
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			obj, err := st.Get(ctx, "default", mode)
			if err != nil {
				t.Fatal(err)
			}
			total := 0
			for _, c := range conflicts {
				total += c
			}
			if n := count(t, obj); n != workers*each {
				t.Fatalf("counter is %d after %d increments (%d conflicts retried)", n, workers*each, total)
			}
			if mode == "client-side" && total == 0 {
				t.Errorf("%d concurrent client-side increments never conflicted: the test did not race", workers*each)
			}
		})
	}
}

// increment adds one to the counter of ConfigMap name.
func increment(ctx context.Context, st *Store, name string) error {
	if name == "server-side" {
		_, err := st.GuaranteedUpdate(ctx, "default", name, "", false, "", func(old runtime.Object) (runtime.Object, error) {
			cm := old.(*corev1.ConfigMap)
			n, _ := strconv.Atoi(cm.Annotations[counterKey])
			cm.Annotations[counterKey] = strconv.Itoa(n + 1)
			return cm, nil
		})
		return err
	}
	seen, ok := st.CachedGet("default", name)
	if !ok {
		return errors.New("counter not in the watch cache")
	}
	want := seen.DeepCopyObject().(*corev1.ConfigMap)
	n, _ := strconv.Atoi(want.Annotations[counterKey])
	want.Annotations[counterKey] = strconv.Itoa(n + 1)
	_, err := st.GuaranteedUpdate(ctx, "default", name, "", false, want.ResourceVersion, func(runtime.Object) (runtime.Object, error) {
		return want.DeepCopyObject(), nil
	})
	return err
}

// TestIntegrationGuaranteedUpdateStaleCache: with a watch cache that
// stopped following etcd, every decision is still etcd's.
func TestIntegrationGuaranteedUpdateStaleCache(t *testing.T) {
	st, stopCache := configMapStore(t)
	ctx := ctxT(t)
	first := createCounter(t, st, "c")
	waitCached(t, st, "c", first.ResourceVersion)
	stopCache()
	setCount := func(precondition string, n int) (runtime.Object, error) {
		return st.GuaranteedUpdate(ctx, "default", "c", "", false, precondition, func(old runtime.Object) (runtime.Object, error) {
			old.(*corev1.ConfigMap).Annotations[counterKey] = strconv.Itoa(n)
			return old, nil
		})
	}
	// Writes after the cache stopped: the cache still says 0 at first's RV.
	one, err := setCount("", 1)
	if err != nil || count(t, one) != 1 {
		t.Fatalf("update from a stale cache: %v", err)
	}
	rv1 := one.(*corev1.ConfigMap).ResourceVersion
	// A precondition on etcd's current version holds though the cache
	// has an older one; the stale one is refused.
	two, err := setCount(rv1, 2)
	if err != nil {
		t.Fatalf("update with the current resourceVersion: %v", err)
	}
	if _, err := setCount(first.ResourceVersion, 9); !apierrors.IsConflict(err) {
		t.Fatalf("update with a stale resourceVersion: got %v, want 409", err)
	}
	// A change that is a no-op against the cached object (count 0) is not
	// one against etcd's (count 2): it must be written.
	zero, err := setCount("", 0)
	if err != nil || count(t, zero) != 0 || zero.(*corev1.ConfigMap).ResourceVersion == two.(*corev1.ConfigMap).ResourceVersion {
		t.Fatalf("update to the cached value: %v %v", zero, err)
	}
	// fn refusing the cached object is asked again with etcd's.
	var calls int
	out, err := st.GuaranteedUpdate(ctx, "default", "c", "", false, "", func(old runtime.Object) (runtime.Object, error) {
		calls++
		cm := old.(*corev1.ConfigMap)
		if cm.ResourceVersion != zero.(*corev1.ConfigMap).ResourceVersion {
			return nil, apierrors.NewBadRequest("stale object")
		}
		cm.Annotations[counterKey] = "5"
		return cm, nil
	})
	if err != nil || count(t, out) != 5 || calls != 2 {
		t.Fatalf("fn refusing the cached object: %v after %d calls", err, calls)
	}
	// A deletion with etcd's resourceVersion as precondition succeeds;
	// then every update is 404, whatever the cache says.
	rv := out.(*corev1.ConfigMap).ResourceVersion
	if _, gone, err := st.Delete(ctx, "default", "c", DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}}); err != nil || !gone {
		t.Fatalf("delete with the current resourceVersion: gone=%v %v", gone, err)
	}
	if _, err := setCount("", 7); !apierrors.IsNotFound(err) {
		t.Fatalf("update of a deleted object still in the cache: got %v, want 404", err)
	}
	if _, _, err := st.Delete(ctx, "default", "c", DeleteOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("delete of a deleted object still in the cache: got %v, want 404", err)
	}
}
