package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hoist-project/hoist/internal/testenv"
)

func TestHealth(t *testing.T) {
	m := New()
	if err := m.Health(time.Minute); err == nil || !strings.Contains(err.Error(), "not programmed yet") {
		t.Fatalf("before any sync: %v", err)
	}
	m.SyncDone(errors.New("etcd down"))
	if err := m.Health(time.Minute); err == nil || !strings.Contains(err.Error(), "etcd down") {
		t.Fatalf("after a failed first sync: %v", err)
	}
	m.SyncDone(nil)
	if err := m.Health(time.Minute); err != nil {
		t.Fatalf("after a good sync: %v", err)
	}
	m.SyncDone(errors.New("netlink busy"))
	if err := m.Health(time.Minute); err != nil {
		t.Fatalf("one failure after a recent good sync is still healthy: %v", err)
	}
	if err := m.Health(0); err == nil || !strings.Contains(err.Error(), "netlink busy") {
		t.Fatalf("stale: %v", err)
	}
}

// TestServe: /metrics exposes the lease expiry, resync, repair and backend
// error families; /healthz follows the sync state.
func TestServe(t *testing.T) {
	m := New()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- m.Serve(ctx, addr, time.Minute) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	get := func(path string) (int, string) {
		t.Helper()
		var lastErr error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				lastErr = err
				continue
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			return resp.StatusCode, string(body)
		}
		t.Fatalf("GET %s: %v", path, lastErr)
		return 0, ""
	}

	if code, body := get("/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not programmed yet") {
		t.Fatalf("/healthz before a sync: %d %q", code, body)
	}
	m.SyncDone(nil)
	if code, body := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz after a sync: %d %q", code, body)
	}

	m.LeaseExpiry.Set(1.7e9)
	m.Resyncs.Add(4)
	m.Repaired.WithLabelValues("fdb", "add").Inc()
	m.Repaired.WithLabelValues("route", "delete").Add(2)
	m.BackendErrors.WithLabelValues("unreachable-peer").Inc()
	m.Peers.Set(2)
	_, body := get("/metrics")
	for _, want := range []string{
		"hoist_flannel_lease_expiry_timestamp_seconds 1.7e+09",
		"hoist_flannel_resyncs_total 4",
		`hoist_flannel_repaired_entries_total{kind="fdb",op="add"} 1`,
		`hoist_flannel_repaired_entries_total{kind="route",op="delete"} 2`,
		`hoist_flannel_backend_errors_total{kind="unreachable-peer"} 1`,
		"hoist_flannel_peers 2",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
