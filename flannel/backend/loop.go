package backend

import (
	"context"
	"net/netip"
	"sort"
	"time"

	"github.com/hoist-project/hoist/flannel/subnet"
)

// Reason says why a sync runs: resync changes count as repairs.
type Reason int

const (
	LeaseChange Reason = iota // a peer joined, left or changed
	Resync                    // periodic comparison
	LinkChange                // an owned link changed under us
)

// SyncFunc programs the data path for peers (every lease but our own).
type SyncFunc func(ctx context.Context, peers []subnet.Lease, why Reason) error

// RunLoop watches leases and calls sync on every change, every
// env.Resync, and whenever kick fires. Nothing is synced before the first
// full lease list arrives, so a restart never deletes routes to peers it
// has not heard of yet, and an unreachable store leaves the data path as it is.
func RunLoop(ctx context.Context, env Env, self netip.Prefix, backendType string, kick <-chan struct{}, sync SyncFunc) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan subnet.Batch)
	watchErr := make(chan error, 1)
	go func() { watchErr <- env.Watcher.WatchLeases(ctx, batches) }()

	known := map[netip.Prefix]subnet.Lease{}
	listed := false
	ticker := time.NewTicker(env.Resync)
	defer ticker.Stop()
	for {
		why := LeaseChange
		select {
		case <-ctx.Done():
			return nil
		case err := <-watchErr:
			return err
		case b := <-batches:
			b.Apply(known)
			listed = listed || b.Snapshot
		case <-ticker.C:
			why = Resync
		case <-kick:
			why = LinkChange
		}
		if !listed {
			continue
		}
		peers := Peers(known, self, backendType, env)
		if why == Resync {
			env.Metrics.Resyncs.Inc()
		}
		err := sync(ctx, peers, why)
		if err != nil {
			env.Metrics.BackendErrors.WithLabelValues("sync").Inc()
			env.Log.Error("sync failed; retrying at next change or resync", "err", err)
		}
		env.Metrics.SyncDone(err)
		env.Metrics.Peers.Set(float64(len(peers)))
	}
}

// Peers returns the leases of other nodes using backendType, sorted by subnet.
func Peers(known map[netip.Prefix]subnet.Lease, self netip.Prefix, backendType string, env Env) []subnet.Lease {
	var out []subnet.Lease
	for p, l := range known {
		if p == self {
			continue
		}
		if l.Attrs.BackendType != backendType {
			env.Log.Warn("ignoring peer with another backend", "subnet", p, "backend", l.Attrs.BackendType, "want", backendType)
			continue
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Subnet.Addr().Less(out[j].Subnet.Addr()) })
	return out
}
