package healthcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Health tracks whether syncs keep up with changes: the proxy is unhealthy
// when a change has waited longer than the timeout without a sync, or it
// never synced.
type Health struct {
	timeout time.Duration
	now     func() time.Time

	mu         sync.Mutex
	lastSync   time.Time
	oldestWait time.Time // first change not yet synced; zero if none
}

// NewHealth returns a Health with the given timeout; now may be nil.
func NewHealth(timeout time.Duration, now func() time.Time) *Health {
	if now == nil {
		now = time.Now
	}
	return &Health{timeout: timeout, now: now}
}

// Queued records that a change is waiting for a sync.
func (h *Health) Queued() {
	h.mu.Lock()
	if h.oldestWait.IsZero() {
		h.oldestWait = h.now()
	}
	h.mu.Unlock()
}

// Synced records a successful sync that covered every queued change.
func (h *Health) Synced() {
	h.mu.Lock()
	h.lastSync, h.oldestWait = h.now(), time.Time{}
	h.mu.Unlock()
}

// Status reports health and the last sync time.
func (h *Health) Status() (healthy bool, lastSync time.Time, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.lastSync.IsZero():
		return false, h.lastSync, "no sync yet (waiting for the informer caches or the first apply)"
	case !h.oldestWait.IsZero() && h.now().Sub(h.oldestWait) > h.timeout:
		return false, h.lastSync, fmt.Sprintf("changes waiting for %s without a successful sync", h.now().Sub(h.oldestWait).Round(time.Second))
	}
	return true, h.lastSync, ""
}

// ServeHTTP serves /healthz.
func (h *Health) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	ok, last, reason := h.Status()
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	body := map[string]any{"lastUpdated": last, "currentTime": h.now(), "healthy": ok}
	if reason != "" {
		body["reason"] = reason
	}
	_ = json.NewEncoder(w).Encode(body)
}

// Serve serves /healthz on healthzAddr and /metrics on metricsAddr (the
// same listener when they are equal; "" disables one) until ctx ends.
func Serve(ctx context.Context, healthzAddr, metricsAddr string, h *Health, m *Metrics) error {
	muxes := map[string]*http.ServeMux{}
	mux := func(addr string) *http.ServeMux {
		if muxes[addr] == nil {
			muxes[addr] = http.NewServeMux()
		}
		return muxes[addr]
	}
	if healthzAddr != "" {
		mux(healthzAddr).Handle("/healthz", h)
	}
	if metricsAddr != "" {
		mux(metricsAddr).Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	}
	errc := make(chan error, len(muxes))
	var servers []*http.Server
	for addr, mx := range muxes {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, s := range servers {
				s.Close()
			}
			return fmt.Errorf("proxy health/metrics: listen on %s: %w", addr, err)
		}
		s := &http.Server{Handler: mx, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, s)
		go func() { errc <- s.Serve(ln) }()
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			for _, s := range servers {
				s.Close()
			}
			return err
		}
	}
	for _, s := range servers {
		s.Close()
	}
	return nil
}
