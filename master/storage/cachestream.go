package storage

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// CacheStream is one watch on the cache, read on its consumer's goroutine:
// Next waits for the cache's broadcast itself, so an event reaches an HTTP
// watch handler with no goroutine hand-off in between. With a thousand
// watchers every hand-off saved is a thousand goroutine switches per change.
type CacheStream struct {
	c       *Cacher
	o       WatchOptions
	gen     int
	pos     int64   // revision of the last event handed out
	initial []entry // current state still to send as ADDED events
	// initialEnd: the bookmark that ends the initial state is still due.
	initialEnd bool
	// buf[next:] are changes copied from the window, not yet handed out;
	// buf is reused, so a watcher keeping up copies without allocating.
	buf    []CacheEvent
	next   int
	tick   *time.Ticker
	closed bool
}

// Stream registers a watch; the caller reads it with Next and must Close it.
func (c *Cacher) Stream(ctx context.Context, o WatchOptions) (*CacheStream, error) {
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	s := &CacheStream{c: c, o: o, gen: c.gen, pos: o.FromRevision, initialEnd: o.SendInitialEvents}
	var initial []entry
	if s.pos == 0 || o.SendInitialEvents {
		s.pos = c.rev
		initial = c.entriesLocked(o.KeyPrefix)
	} else if s.pos < c.startRev {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: revision %d, oldest cached %d", ErrTooOld, s.pos, c.startRev+1)
	}
	c.watchers++
	c.mu.Unlock()
	s.initial = c.matching(initial, o.Match)
	if o.BookmarkInterval > 0 {
		s.tick = time.NewTicker(o.BookmarkInterval)
	}
	return s, nil
}

// Close ends the watch. It is safe to call more than once.
func (s *CacheStream) Close() {
	if s.closed {
		return
	}
	s.closed = true
	if s.tick != nil {
		s.tick.Stop()
	}
	s.c.mu.Lock()
	s.c.watchers--
	s.c.mu.Unlock()
}

// Ready reports whether Next has an event without waiting for a change
// (more may have arrived in the window meanwhile: Ready only promises no
// wait).
func (s *CacheStream) Ready() bool {
	return len(s.initial) > 0 || s.initialEnd || s.next < len(s.buf)
}

// Next returns the watch's next event: the initial state first (if asked
// for), then changes in revision order, and BOOKMARKs while idle. It
// returns ctx's error when ctx ends, and an ErrTooOld error when the cache
// was reset or the window moved past this watcher (the client must
// relist).
func (s *CacheStream) Next(ctx context.Context) (CacheEvent, error) {
	for len(s.initial) > 0 {
		e := s.initial[0]
		s.initial = s.initial[1:]
		if obj, ok := s.c.decodeEntry(e); ok {
			// A memo per watcher: keeping encodings of the whole cache
			// would cost more memory than it saves CPU.
			return CacheEvent{Type: Added, Key: e.key, Obj: obj, Attrs: e.attrs.attrs, Revision: e.rev, Memo: &Memo{}}, nil
		}
	}
	if s.initialEnd {
		s.initialEnd = false
		return CacheEvent{Type: Bookmark, Revision: s.pos, InitialEventsEnd: true}, nil
	}
	for {
		for s.next < len(s.buf) {
			e := s.buf[s.next]
			s.buf[s.next] = CacheEvent{} // the window owns the event, not this buffer
			s.next++
			s.pos = e.Revision
			if p := s.o.KeyPrefix; len(p) > 0 && (len(e.Key) < len(p) || e.Key[:len(p)] != p) {
				continue
			}
			if re, err := s.c.resolve(e); err == nil {
				return re, nil
			}
		}
		if err := ctx.Err(); err != nil {
			return CacheEvent{}, err
		}
		c := s.c
		c.mu.RLock()
		if c.gen != s.gen || s.pos < c.startRev {
			c.mu.RUnlock()
			return CacheEvent{}, fmt.Errorf("%w: watch cache was reset or the watcher fell behind", ErrTooOld)
		}
		i := sort.Search(len(c.events), func(i int) bool { return c.events[i].Revision > s.pos })
		s.buf, s.next = append(s.buf[:0], c.events[i:]...), 0
		cur, n := c.rev, c.notify
		c.mu.RUnlock()
		if len(s.buf) > 0 {
			continue
		}
		var tick <-chan time.Time
		if s.tick != nil {
			tick = s.tick.C
		}
		select {
		case <-ctx.Done():
			return CacheEvent{}, ctx.Err()
		case <-n:
		case <-tick:
			if cur > s.pos {
				s.pos = cur
			}
			return CacheEvent{Type: Bookmark, Revision: s.pos}, nil
		}
	}
}
