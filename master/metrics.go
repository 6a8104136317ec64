package master

import (
	"net/http"
	"strconv"
	"time"

	"github.com/hoist-project/hoist/master/apiserver/request"
	"github.com/hoist-project/hoist/master/registry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the master's Prometheus metrics, on a registry of its own.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	etcd     *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_request_total", Help: "API requests by verb, group, version, resource, subresource and HTTP code.",
		}, []string{"verb", "group", "version", "resource", "subresource", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "apiserver_request_duration_seconds", Help: "API request latency (watches excluded).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"verb", "group", "version", "resource", "subresource"}),
		etcd: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "etcd_request_duration_seconds", Help: "etcd request latency by operation.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
		}, []string{"operation"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.etcd,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observeRequest(info request.Info, code int, d time.Duration) {
	if !info.IsResourceRequest {
		return
	}
	m.requests.WithLabelValues(info.Verb, info.APIGroup, info.APIVersion, info.Resource, info.Subresource, strconv.Itoa(code)).Inc()
	if info.Verb != "watch" {
		m.latency.WithLabelValues(info.Verb, info.APIGroup, info.APIVersion, info.Resource, info.Subresource).Observe(d.Seconds())
	}
}

func (m *metrics) observeEtcd(op string, d time.Duration, _ error) {
	m.etcd.WithLabelValues(op).Observe(d.Seconds())
}

// watchCaches exports each store's cache size and watcher count, read at
// scrape time.
func (m *metrics) watchCaches(stores []*registry.Store) {
	for _, s := range stores {
		labels := prometheus.Labels{"group": s.Res.GroupVersion.Group, "resource": s.Res.Name}
		c := s.Cache()
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "apiserver_watch_cache_objects",
				Help: "Objects held in the watch cache.", ConstLabels: labels},
				func() float64 { n, _ := c.Size(); return float64(n) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "apiserver_watch_cache_events",
				Help: "Events buffered in the watch cache.", ConstLabels: labels},
				func() float64 { _, n := c.Size(); return float64(n) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "apiserver_registered_watchers",
				Help: "Open watches served from the watch cache.", ConstLabels: labels},
				func() float64 { return float64(c.Watchers()) }),
		)
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
