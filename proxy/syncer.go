package proxy

import (
	"context"
	"log/slog"
	"time"

	"github.com/hoist-project/hoist/proxy/changes"
	"github.com/hoist-project/hoist/proxy/conntrack"
	"github.com/hoist-project/hoist/proxy/healthcheck"
)

// DataPath programs the kernel from a complete state; Sync must be safe to
// repeat with the same state.
type DataPath interface {
	Sync(ctx context.Context, st changes.State, full bool) error
}

// Syncer runs one sync: snapshot the tracker, program the data path, then
// reconcile UDP conntrack and the health-check node ports against the same
// snapshot. Its dependencies other than the tracker and data path may be nil.
type Syncer struct {
	Tracker   *changes.Tracker
	DataPath  DataPath
	Conntrack *conntrack.Cleaner
	NodePorts *healthcheck.NodePortServers
	Metrics   *healthcheck.Metrics
	Health    *healthcheck.Health
	Log       *slog.Logger

	failed bool // the last sync failed: the next one is full
}

// Sync performs one sync; full rewrites everything.
func (s *Syncer) Sync(ctx context.Context, full bool) error {
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	full = full || s.failed
	start := time.Now()
	st, changed, errs := s.Tracker.Snapshot()
	for _, err := range errs {
		log.Warn("service skipped", "err", err)
	}
	if err := s.DataPath.Sync(ctx, st, full); err != nil {
		s.failed = true
		if s.Metrics != nil {
			s.Metrics.SyncErrors.Inc()
		}
		return err
	}
	s.failed = false
	kind := "partial"
	if full {
		kind = "full"
	}
	if s.Metrics != nil {
		s.Metrics.SyncLatency.WithLabelValues(kind).Observe(time.Since(start).Seconds())
		s.Metrics.LastSync.SetToCurrentTime()
	}
	if s.Health != nil {
		s.Health.Synced()
	}
	// After the rules: new flows already go to current endpoints when the
	// stale ones are deleted.
	if s.Conntrack != nil {
		n, err := s.Conntrack.Reconcile(conntrack.AllowedFrom(st))
		if s.Metrics != nil {
			s.Metrics.ConntrackCleanups.Add(float64(n))
		}
		if err != nil {
			log.Warn("conntrack cleanup failed; retried next sync", "err", err)
		}
	}
	if s.NodePorts != nil {
		if err := s.NodePorts.Sync(healthCheckPorts(st)); err != nil {
			log.Warn("health-check node ports", "err", err)
		}
	}
	log.Debug("synced", "kind", kind, "services", len(st.Services), "changed", len(changed), "took", time.Since(start))
	return nil
}

func healthCheckPorts(st changes.State) map[int32]healthcheck.Want {
	out := map[int32]healthcheck.Want{}
	for name, sp := range st.Services {
		if !sp.ExternalPolicyLocal || sp.HealthCheckNodePort == 0 {
			continue
		}
		w := out[sp.HealthCheckNodePort]
		w.Service = name.NamespacedName
		w.LocalEndpoints = len(changes.Usable(st.Endpoints[name], true))
		out[sp.HealthCheckNodePort] = w
	}
	return out
}

// loop syncs when woken, at most once per minInterval, and every period
// even without changes (which also reconciles conntrack). A sync is full
// (rewriting every chain, repairing rules others removed) first, after a
// failure, and once fullPeriod has passed since the last full one.
func loop(ctx context.Context, s *Syncer, wake <-chan struct{}, minInterval, period, fullPeriod time.Duration, log *slog.Logger) {
	var last time.Time
	lastFull := time.Now()
	full := true // the first sync after the caches filled
	resync := time.NewTimer(0)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-resync.C:
		}
		if wait := time.Until(last.Add(minInterval)); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		if time.Since(lastFull) >= fullPeriod {
			full = true
		}
		last = time.Now()
		if err := s.Sync(ctx, full); err != nil {
			log.Error("sync failed; retrying as a full sync", "err", err)
			resync.Reset(minInterval)
			continue
		}
		if full {
			lastFull = time.Now()
			full = false
		}
		resync.Reset(period)
	}
}
