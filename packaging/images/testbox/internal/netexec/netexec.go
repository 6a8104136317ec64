// Package netexec holds the HTTP and UDP handlers of `testbox netexec`: small
// servers that let a test ask a pod who it is, what address it was reached
// from, and to connect onward to another address from inside the pod.
package netexec

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
)

// Config is what the HTTP handler needs from the process around it.
type Config struct {
	Hostname    string
	EnableShell bool
	// Exit ends the process with the given code; it is called after the
	// /exit reply has been flushed to the client.
	Exit func(code int)
	// Dialer sends /dial requests; nil means a Dialer with default timeouts.
	Dialer *Dialer
}

// NewHandler returns the netexec HTTP API.
func NewHandler(cfg Config) http.Handler {
	if cfg.Dialer == nil {
		cfg.Dialer = &Dialer{}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/hostname", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, cfg.Hostname)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.URL.Query().Get("msg"))
	})
	mux.HandleFunc("/clientip", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.RemoteAddr)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) { handleExit(w, r, cfg.Exit) })
	mux.HandleFunc("/dial", func(w http.ResponseWriter, r *http.Request) { handleDial(w, r, cfg.Dialer) })
	mux.HandleFunc("/shell", func(w http.ResponseWriter, r *http.Request) {
		if !cfg.EnableShell {
			http.Error(w, "/shell is disabled: start netexec with --enable-shell", http.StatusForbidden)
			return
		}
		handleShell(w, r)
	})
	return mux
}

func handleExit(w http.ResponseWriter, r *http.Request, exit func(int)) {
	code, err := strconv.Atoi(r.URL.Query().Get("code"))
	if err != nil || code < 0 || code > 255 {
		http.Error(w, "code must be an integer 0-255", http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "exiting with code %d\n", code)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if exit != nil {
		exit(code)
	}
}

func handleDial(w http.ResponseWriter, r *http.Request, d *Dialer) {
	q := r.URL.Query()
	req := DialRequest{
		Host:     q.Get("host"),
		Port:     q.Get("port"),
		Protocol: q.Get("protocol"),
		Request:  q.Get("request"),
		Tries:    1,
	}
	if t := q.Get("tries"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 || n > 1000 {
			http.Error(w, "tries must be an integer 1-1000", http.StatusBadRequest)
			return
		}
		req.Tries = n
	}
	if req.Protocol == "" {
		req.Protocol = "http"
	}
	if err := req.validate(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, d.Dial(r.Context(), req))
}

type shellResult struct {
	Output string `json:"output"`
	Error  string `json:"error,omitempty"`
}

func handleShell(w http.ResponseWriter, r *http.Request) {
	cmd := r.URL.Query().Get("cmd")
	if cmd == "" {
		http.Error(w, "missing cmd", http.StatusBadRequest)
		return
	}
	out, err := exec.CommandContext(r.Context(), "/bin/sh", "-c", cmd).CombinedOutput()
	res := shellResult{Output: string(out)}
	if err != nil {
		res.Error = err.Error()
	}
	writeJSON(w, res)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}
