// Package liveness serves a /healthz that is healthy for a fixed time and then
// fails, for testing liveness probes and restarts.
package liveness

import (
	"fmt"
	"net/http"
	"time"
)

// NewHandler answers 200 on /healthz until healthyFor has passed since the
// call, then 500. now is the clock (time.Now in production).
func NewHandler(healthyFor time.Duration, now func() time.Time) http.Handler {
	start := now()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if up := now().Sub(start); up >= healthyFor {
			http.Error(w, fmt.Sprintf("unhealthy: up %s, healthy only for %s", up.Truncate(time.Second), healthyFor), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "ok")
	})
	return mux
}
