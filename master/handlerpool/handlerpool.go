// Package handlerpool runs HTTP handlers on a few long-lived goroutines.
//
// net/http serves every HTTP/2 request on a new goroutine, whose stack
// starts small and is grown, by copying, each time decoding, encoding or
// the etcd client nests deeper: in the master's create profile that growth
// cost as much as encoding the object. A worker keeps the stack it grew
// for earlier requests (the garbage collector still shrinks the stacks of
// idle workers), as gRPC's stream workers do.
package handlerpool

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
)

// Wrap serves h's requests on up to workers pooled goroutines, which stop
// when ctx ends. A request that finds every worker busy (or stopped) runs
// on its own goroutine, as without the pool, so the pool never queues or
// delays one. Requests that last as long as the client wants (watches,
// followed logs, upgraded connections for exec, attach and port-forward)
// always do, not to hold a worker.
func Wrap(ctx context.Context, h http.Handler, workers int) http.Handler {
	p := &pool{h: h, jobs: make(chan *job)}
	for range workers {
		go p.work(ctx)
	}
	return p
}

type pool struct {
	h    http.Handler
	jobs chan *job
}

// job is one request handed to a worker, which signals done when it is
// served.
type job struct {
	w     http.ResponseWriter
	r     *http.Request
	done  chan struct{}
	panic any
}

var jobs = sync.Pool{New: func() any { return &job{done: make(chan struct{}, 1)} }}

func (p *pool) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if longRunning(r) {
		p.h.ServeHTTP(w, r)
		return
	}
	j := jobs.Get().(*job)
	j.w, j.r = w, r
	select {
	case p.jobs <- j:
		<-j.done
	default:
		j.w, j.r = nil, nil
		jobs.Put(j)
		p.h.ServeHTTP(w, r)
		return
	}
	v := j.panic
	*j = job{done: j.done}
	jobs.Put(j)
	if v != nil {
		// The request's own goroutine panics as the handler did, so
		// net/http answers and logs it as without the pool
		// (http.ErrAbortHandler included).
		panic(v)
	}
}

func (p *pool) work(ctx context.Context) {
	for {
		select {
		case j := <-p.jobs:
			p.serve(j)
			j.done <- struct{}{}
		case <-ctx.Done():
			return
		}
	}
}

// serve runs the handler, keeping a panic for ServeHTTP to raise again,
// with the stack where it happened (which the raise would not show).
func (p *pool) serve(j *job) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				v = fmt.Sprintf("%v\n%s", v, debug.Stack())
			}
			j.panic = v
		}
	}()
	p.h.ServeHTTP(j.w, j.r)
}

// longRunning reports whether r may stream for long: a watch (?watch= or
// the legacy /watch/ paths), ?follow= logs or a connection upgrade.
func longRunning(r *http.Request) bool {
	q := r.URL.RawQuery
	return strings.Contains(q, "watch=") || strings.Contains(q, "follow=") ||
		strings.Contains(r.URL.Path, "/watch/") || r.Header.Get("Upgrade") != ""
}
