package podworkers

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

type recorder struct {
	mu     sync.Mutex
	events []string
	active map[types.UID]int
	maxPar int
	failN  int
}

func (r *recorder) enter(pod *v1.Pod, what string) func() {
	r.mu.Lock()
	r.events = append(r.events, what+" "+pod.Name)
	r.active[pod.UID]++
	if r.active[pod.UID] > r.maxPar {
		r.maxPar = r.active[pod.UID]
	}
	r.mu.Unlock()
	time.Sleep(time.Millisecond) // widen any overlap window; not synchronisation
	return func() { r.mu.Lock(); r.active[pod.UID]--; r.mu.Unlock() }
}

func (r *recorder) count(what string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e == what {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func pod(uid, name string) *v1.Pod {
	p := &v1.Pod{}
	p.UID, p.Name = types.UID(uid), name
	return p
}

func setup(t *testing.T) (*Workers, *recorder) {
	r := &recorder{active: map[types.UID]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	w := New(ctx, Config{
		Resync: time.Hour,
		Sync: func(ctx context.Context, p *v1.Pod) (time.Duration, error) {
			defer r.enter(p, "sync")()
			return 0, nil
		},
		Kill: func(ctx context.Context, p *v1.Pod) error {
			defer r.enter(p, "kill")()
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.failN > 0 {
				r.failN--
				return errors.New("boom")
			}
			return nil
		},
	})
	t.Cleanup(func() { cancel(); w.Wait() })
	return w, r
}

func TestUpdatesAreSerialisedPerPod(t *testing.T) {
	w, r := setup(t)
	for i := 0; i < 50; i++ {
		w.Update(pod("u1", "a"))
		w.Kick("u1")
	}
	waitFor(t, "a sync", func() bool { return r.count("sync a") > 0 })
	if r.maxPar > 1 {
		t.Fatalf("%d concurrent syncs of one pod", r.maxPar)
	}
}

func TestRemoveKillsUntilSuccessThenForgets(t *testing.T) {
	w, r := setup(t)
	r.failN = 2
	w.Update(pod("u1", "a"))
	w.Remove(pod("u1", "a"))
	waitFor(t, "worker gone", func() bool { return !w.Known("u1") })
	if n := r.count("kill a"); n != 3 {
		t.Fatalf("kill ran %d times, want 3 (two failures, one success)", n)
	}
}

func TestReAddDuringKillKeepsSyncing(t *testing.T) {
	w, r := setup(t)
	w.Update(pod("u1", "a"))
	waitFor(t, "first sync", func() bool { return r.count("sync a") == 1 })
	w.Remove(pod("u1", "a"))
	w.Update(pod("u1", "a"))
	waitFor(t, "sync after re-add", func() bool { return r.count("sync a") >= 2 })
	if !w.Known("u1") {
		t.Fatal("a re-added pod must keep its worker")
	}
}
