package registry

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/hoist-project/hoist/master/storage"
)

// EventStream is a watch read on its consumer's goroutine.
type EventStream interface {
	// Next blocks for the next event; false once the watch has ended (its
	// context ended, or after the ERROR event that says why it stopped).
	Next() (watch.Event, bool)
	// Ready reports whether Next would return without waiting for a
	// change: the consumer writes ready events before one flush.
	Ready() bool
	// Stop releases the watch.
	Stop()
}

// cacheEvents serves a watch from the watch cache: the consumer's own
// goroutine waits for changes, applies the selector and encodes.
type cacheEvents struct {
	ctx    context.Context
	s      *Store
	filter Filter
	cs     *storage.CacheStream
	ended  bool
}

func (w *cacheEvents) Next() (watch.Event, bool) {
	for !w.ended {
		ce, err := w.cs.Next(w.ctx)
		if err != nil {
			w.ended = true
			if w.ctx.Err() != nil {
				return watch.Event{}, false
			}
			return w.s.errorEvent(err), true
		}
		if we, ok := w.s.filterEvent(w.filter, ce); ok {
			return we, true
		}
	}
	return watch.Event{}, false
}

func (w *cacheEvents) Ready() bool { return w.cs.Ready() }
func (w *cacheEvents) Stop()       { w.cs.Close() }

// chanEvents is a watch fed by a goroutine (the etcd fallback).
type chanEvents struct {
	ch     <-chan watch.Event
	cancel context.CancelFunc
}

func (w *chanEvents) Next() (watch.Event, bool) {
	ev, ok := <-w.ch
	return ev, ok
}

func (w *chanEvents) Ready() bool { return len(w.ch) > 0 }
func (w *chanEvents) Stop()       { w.cancel() }

// errorEvent is the ERROR event that tells a watcher why its watch ended.
func (s *Store) errorEvent(err error) watch.Event {
	st := s.storageErr(err, "").(apierrors.APIStatus).Status()
	return watch.Event{Type: watch.Error, Object: &st}
}
