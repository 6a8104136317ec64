// Package healthcheck serves the proxy's /healthz and /metrics and the
// per-service health-check node ports of externalTrafficPolicy Local
// services, which external load balancers probe to find nodes that have
// local endpoints.
package healthcheck

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the proxy's Prometheus metrics, on their own registry.
type Metrics struct {
	Registry          *prometheus.Registry
	SyncLatency       *prometheus.HistogramVec // by kind: full, partial
	LastSync          prometheus.Gauge
	Rules             *prometheus.GaugeVec // by table
	MapEntries        *prometheus.GaugeVec // by map (eBPF mode)
	RestoreFailures   prometheus.Counter
	ConntrackCleanups prometheus.Counter
	SyncErrors        prometheus.Counter
}

// NewMetrics creates and registers the metrics.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		SyncLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hoist_proxy_sync_duration_seconds",
			Help:    "Time to render and apply the proxy rules.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"kind"}),
		LastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hoist_proxy_last_sync_timestamp_seconds", Help: "Unix time of the last successful sync."}),
		Rules: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hoist_proxy_iptables_rules", Help: "Rules in the proxy's chains after the last sync."}, []string{"table"}),
		MapEntries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hoist_proxy_bpf_map_entries", Help: "Entries of the eBPF mode's service and backend maps after the last sync."}, []string{"map"}),
		RestoreFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hoist_proxy_iptables_restore_failures_total", Help: "Failed iptables-restore runs."}),
		ConntrackCleanups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hoist_proxy_conntrack_cleanups_total", Help: "Stale UDP conntrack entries deleted."}),
		SyncErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hoist_proxy_sync_errors_total", Help: "Syncs that failed and will be retried."}),
	}
	m.Registry.MustRegister(m.SyncLatency, m.LastSync, m.Rules, m.MapEntries, m.RestoreFailures, m.ConntrackCleanups, m.SyncErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
