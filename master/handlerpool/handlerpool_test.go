package handlerpool

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// onWorker reports whether the calling goroutine is one of the pool's.
func onWorker() bool {
	buf := make([]byte, 64<<10)
	return strings.Contains(string(buf[:runtime.Stack(buf, false)]), "handlerpool.(*pool).work")
}

// serve runs one request through h and returns the recorder.
func serve(h http.Handler, target string, hdr http.Header) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", target, nil)
	for k, v := range hdr {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// where answers "worker" or "own" after the goroutine that served it.
var where = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if onWorker() {
		io.WriteString(w, "worker")
	} else {
		io.WriteString(w, "own")
	}
})

func TestServesOnWorkersExceptLongRunning(t *testing.T) {
	h := Wrap(t.Context(), where, 2)
	for _, c := range []struct {
		target string
		hdr    http.Header
		want   string
	}{
		{"/api/v1/namespaces/a/pods", nil, "worker"},
		{"/api/v1/pods?labelSelector=x", nil, "worker"},
		{"/api/v1/pods?watch=true", nil, "own"},
		{"/api/v1/pods?resourceVersion=5&watch=1", nil, "own"},
		{"/api/v1/watch/pods", nil, "own"},
		{"/api/v1/namespaces/a/pods/p/log?follow=true", nil, "own"},
		{"/api/v1/namespaces/a/pods/p/exec?command=sh", http.Header{"Upgrade": {"websocket"}}, "own"},
	} {
		// A worker may not be waiting yet right after Wrap: a request
		// that finds none runs on its own, so retry until one took it.
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := serve(h, c.target, c.hdr).Body.String()
			if got == c.want {
				break
			}
			if c.want == "own" || time.Now().After(deadline) {
				t.Fatalf("%s served on %s goroutine, want %s", c.target, got, c.want)
			}
			runtime.Gosched()
		}
	}
}

func TestBusyWorkersDoNotQueue(t *testing.T) {
	release := make(chan struct{})
	started := make(chan bool)
	h := Wrap(t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- onWorker()
			<-release
		}
		where(w, r)
	}), 1)
	// Occupy the only worker, retrying while the request finds it not yet
	// waiting and runs on its own goroutine.
	slow := make(chan string)
	for {
		go func() { slow <- serve(h, "/slow", nil).Body.String() }()
		if <-started {
			break
		}
		release <- struct{}{}
		<-slow
	}
	// The worker is busy: this request must not wait for it.
	if got := serve(h, "/fast", nil).Body.String(); got != "own" {
		t.Fatalf("request while the worker is busy served on %s goroutine", got)
	}
	release <- struct{}{}
	if got := <-slow; got != "worker" {
		t.Fatalf("slow request answered %q, want worker", got)
	}
}

func TestPanicsReachTheRequestGoroutine(t *testing.T) {
	for _, c := range []struct {
		value any
		want  func(any) bool
	}{
		{http.ErrAbortHandler, func(v any) bool { return v == http.ErrAbortHandler }},
		{"boom", func(v any) bool {
			s, ok := v.(string)
			return ok && strings.HasPrefix(s, "boom\n") && strings.Contains(s, "handlerpool_test.go")
		}},
	} {
		h := Wrap(t.Context(), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			if onWorker() {
				panic(c.value)
			}
		}), 1)
		deadline := time.Now().Add(10 * time.Second)
		for {
			v := func() (v any) {
				defer func() { v = recover() }()
				serve(h, "/", nil)
				return nil
			}()
			if v != nil {
				if !c.want(v) {
					t.Fatalf("panic %v reached the caller as %#v", c.value, v)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no request reached a worker")
			}
			runtime.Gosched()
		}
	}
}

func TestWorkersStopWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	h := Wrap(ctx, where, 4)
	cancel()
	// Stopped workers take nothing: every request runs on its own.
	deadline := time.Now().Add(10 * time.Second)
	for !allOwn(h) {
		if time.Now().After(deadline) {
			t.Fatal("requests still served by workers after the context ended")
		}
		runtime.Gosched()
	}
}

func allOwn(h http.Handler) bool {
	for range 20 {
		if serve(h, "/", nil).Body.String() != "own" {
			return false
		}
	}
	return true
}
