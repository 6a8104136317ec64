package liveness

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestHealthyThenFailing(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	h := NewHandler(10*time.Second, func() time.Time { return now })
	status := func() int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		return rec.Code
	}
	for _, step := range []struct {
		advance time.Duration
		want    int
	}{{0, 200}, {9 * time.Second, 200}, {999 * time.Millisecond, 200}, {time.Millisecond, 500}, {time.Hour, 500}} {
		now = now.Add(step.advance)
		if got := status(); got != step.want {
			t.Fatalf("after +%s: status %d, want %d", step.advance, got, step.want)
		}
	}
}
