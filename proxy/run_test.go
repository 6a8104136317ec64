package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/hoist-project/hoist/proxy/changes"
	ct "github.com/hoist-project/hoist/proxy/changes/changestest"
)

// recordingPath is a DataPath that records syncs and can be told to fail.
type recordingPath struct {
	mu    sync.Mutex
	syncs []recordedSync
	fail  int
	ch    chan recordedSync
}

type recordedSync struct {
	at        time.Time
	full      bool
	endpoints int
}

func (r *recordingPath) Sync(_ context.Context, st changes.State, full bool) error {
	n := 0
	for _, eps := range st.Endpoints {
		n += len(eps)
	}
	s := recordedSync{time.Now(), full, n}
	r.mu.Lock()
	failing := r.fail > 0
	if failing {
		r.fail--
	}
	r.syncs = append(r.syncs, s)
	r.mu.Unlock()
	r.ch <- s
	if failing {
		return errors.New("injected failure")
	}
	return nil
}

func next(t *testing.T, ch chan recordedSync) recordedSync {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no sync within 5s")
		return recordedSync{}
	}
}

func webSlice(ips ...string) *discovery.EndpointSlice {
	var eps []ct.EP
	for _, ip := range ips {
		eps = append(eps, ct.EP{IP: ip, Node: "n0"})
	}
	return ct.Slice("web", "web-0", []discovery.EndpointPort{ct.SlicePort("http", v1.ProtocolTCP, 8080)}, eps...)
}

func TestRunInformersToSyncs(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewSimpleClientset(
		ct.Service("web", "10.96.0.10", []v1.ServicePort{ct.Port("http", v1.ProtocolTCP, 80, "http", 0)}),
		webSlice("10.244.1.5"),
	)
	dp := &recordingPath{ch: make(chan recordedSync, 100)}
	const minInterval = 200 * time.Millisecond
	cfg := Config{Mode: ModeIPTables, NodeName: "n0", MinSyncInterval: minInterval, SyncPeriod: time.Hour,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, cfg, client, &Syncer{DataPath: dp}) }()

	// The first sync comes after the caches are filled: full, complete.
	if s := next(t, dp.ch); !s.full || s.endpoints != 1 {
		t.Fatalf("first sync %+v, want full with the listed endpoint", s)
	}
	// A burst of changes is coalesced and rate-limited.
	slices := client.DiscoveryV1().EndpointSlices("default")
	for _, ips := range [][]string{{"10.244.1.5", "10.244.1.6"}, {"10.244.1.5", "10.244.1.6", "10.244.1.7"}} {
		if _, err := slices.Update(ctx, webSlice(ips...), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var last recordedSync
	for last.endpoints != 3 {
		last = next(t, dp.ch)
		if last.full {
			t.Fatalf("sync after a change is full: %+v", last)
		}
	}
	dp.mu.Lock()
	for i := 1; i < len(dp.syncs); i++ {
		if gap := dp.syncs[i].at.Sub(dp.syncs[i-1].at); gap < minInterval-10*time.Millisecond {
			t.Errorf("syncs %d and %d only %s apart (min interval %s)", i-1, i, gap, minInterval)
		}
	}
	// A failed sync is retried as a full one without a new event.
	dp.fail = 1
	dp.mu.Unlock()
	if err := client.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if s := next(t, dp.ch); s.endpoints != 0 {
		t.Fatalf("sync after delete: %+v", s)
	}
	if s := next(t, dp.ch); !s.full {
		t.Fatalf("retry after failure is not full: %+v", s)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func TestRunRejectsBadMode(t *testing.T) {
	if err := Run(context.Background(), Config{Mode: "ipvs", NodeName: "n0"}); err == nil {
		t.Fatal("unknown mode accepted")
	}
}

func TestRunPeriodicSyncs(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewSimpleClientset()
	dp := &recordingPath{ch: make(chan recordedSync, 100)}
	cfg := Config{Mode: ModeIPTables, NodeName: "n0", MinSyncInterval: 10 * time.Millisecond,
		SyncPeriod: 100 * time.Millisecond, FullSyncPeriod: 350 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, cfg, client, &Syncer{DataPath: dp}) }()
	if s := next(t, dp.ch); !s.full {
		t.Fatal("first sync not full")
	}
	// Without any event: partial syncs every period, then a full one.
	if s := next(t, dp.ch); s.full {
		t.Fatal("periodic sync before the full period is full")
	}
	for s := next(t, dp.ch); !s.full; s = next(t, dp.ch) {
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
