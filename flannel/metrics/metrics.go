// Package metrics holds flanneld's Prometheus metrics and serves /metrics
// and /healthz. It uses its own registry, never the global one.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultAddress is where /healthz and /metrics are served unless configured.
const DefaultAddress = "127.0.0.1:10267"

// Metrics are flanneld's instruments.
type Metrics struct {
	Registry      *prometheus.Registry
	LeaseExpiry   prometheus.Gauge
	Resyncs       prometheus.Counter
	Repaired      *prometheus.CounterVec // kind (route|fdb|neigh|device|iptables), op (add|delete)
	Applied       *prometheus.CounterVec // every change, repairs and lease events alike
	BackendErrors *prometheus.CounterVec // kind
	Peers         prometheus.Gauge

	mu       sync.Mutex
	lastSync time.Time
	lastErr  error
}

// New creates the metrics on a private registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		LeaseExpiry: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hoist_flannel_lease_expiry_timestamp_seconds",
			Help: "Unix time at which this node's subnet lease expires unless renewed."}),
		Resyncs: prometheus.NewCounter(prometheus.CounterOpts{Name: "hoist_flannel_resyncs_total",
			Help: "Periodic comparisons of owned kernel state with the desired state."}),
		Repaired: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hoist_flannel_repaired_entries_total",
			Help: "Entries a periodic resync found wrong (missing, extra or changed behind flanneld's back) and fixed."}, []string{"kind", "op"}),
		Applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hoist_flannel_applied_entries_total",
			Help: "Kernel entries written or deleted by flanneld."}, []string{"kind", "op"}),
		BackendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hoist_flannel_backend_errors_total",
			Help: "Failures of the backend to program the data path."}, []string{"kind"}),
		Peers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hoist_flannel_peers",
			Help: "Remote nodes the data path is programmed for."}),
	}
	m.Registry.MustRegister(m.LeaseExpiry, m.Resyncs, m.Repaired, m.Applied, m.BackendErrors, m.Peers,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// SyncDone records the outcome of a sync for /healthz.
func (m *Metrics) SyncDone(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastErr = err
	if err == nil {
		m.lastSync = time.Now()
	}
}

// Health reports nil when a sync succeeded within maxAge.
func (m *Metrics) Health(maxAge time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.lastSync.IsZero() && m.lastErr != nil:
		return fmt.Errorf("data path not programmed yet: %v", m.lastErr)
	case m.lastSync.IsZero():
		return errors.New("data path not programmed yet (waiting for the subnet lease and the first lease list)")
	case time.Since(m.lastSync) > maxAge:
		return fmt.Errorf("last successful sync %s ago (last error: %v)", time.Since(m.lastSync).Round(time.Second), m.lastErr)
	}
	return nil
}

// Serve serves /metrics and /healthz on addr until ctx ends.
func (m *Metrics) Serve(ctx context.Context, addr string, maxAge time.Duration) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := m.Health(maxAge); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("healthz/metrics listener: %w (choose another --healthz-address)", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
