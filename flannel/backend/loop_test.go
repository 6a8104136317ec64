package backend

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/hoist-project/hoist/flannel/metrics"
	"github.com/hoist-project/hoist/flannel/subnet"
)

// chanWatcher delivers the batches the test sends.
type chanWatcher chan subnet.Batch

func (w chanWatcher) WatchLeases(ctx context.Context, out chan<- subnet.Batch) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-w:
			out <- b
		}
	}
}

func lease(s, backend string) subnet.Lease {
	return subnet.Lease{Subnet: netip.MustParsePrefix(s), Attrs: subnet.Attrs{BackendType: backend}}
}

func TestRunLoopWaitsForListAndSkipsSelf(t *testing.T) {
	w := make(chanWatcher)
	env := Env{Watcher: w, Resync: time.Hour, Metrics: metrics.New(), Log: slog.New(slog.DiscardHandler)}
	self := netip.MustParsePrefix("10.244.1.0/24")
	synced := make(chan []subnet.Lease, 10)
	kick := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunLoop(ctx, env, self, "vxlan", kick, func(_ context.Context, peers []subnet.Lease, _ Reason) error {
			synced <- peers
			return nil
		})
	}()
	// An incremental batch before any list: nothing is synced (a restart
	// must not delete routes to peers it has not heard of yet).
	w <- subnet.Batch{Events: []subnet.Event{{Type: subnet.Added, Lease: lease("10.244.2.0/24", "vxlan")}}}
	kick <- struct{}{}
	select {
	case p := <-synced:
		t.Fatalf("synced %v before the first list", p)
	case <-time.After(50 * time.Millisecond):
	}
	w <- subnet.Batch{Snapshot: true, Events: []subnet.Event{
		{Type: subnet.Added, Lease: lease("10.244.1.0/24", "vxlan")},
		{Type: subnet.Added, Lease: lease("10.244.3.0/24", "vxlan")},
		{Type: subnet.Added, Lease: lease("10.244.9.0/24", "host-gw")},
	}}
	peers := <-synced
	if len(peers) != 1 || peers[0].Subnet.String() != "10.244.3.0/24" {
		t.Fatalf("peers %v, want only 10.244.3.0/24 (not self, not another backend)", peers)
	}
	w <- subnet.Batch{Events: []subnet.Event{{Type: subnet.Removed, Lease: lease("10.244.3.0/24", "vxlan")}}}
	if peers := <-synced; len(peers) != 0 {
		t.Fatalf("peers after removal %v", peers)
	}
	if err := env.Metrics.Health(time.Minute); err != nil {
		t.Fatalf("health after a good sync: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
