package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/hoist-project/hoist/master/registry"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// defaultWatchTimeout bounds watches that set no timeoutSeconds; clients
// re-establish them (upstream picks 30-60 minutes).
const defaultWatchTimeout = 30 * time.Minute

type watchEvent struct {
	Type   watch.EventType `json:"type"`
	Object any             `json:"object"`
}

func (h *handler) watch() error {
	o, err := h.listOptions()
	if err != nil {
		return err
	}
	if h.info.Name != "" { // /watch/.../name: a watch on one object
		sel, err := h.st.ParseFilter(h.query("labelSelector"), joinSelectors(h.query("fieldSelector"), "metadata.name="+h.info.Name))
		if err != nil {
			return err
		}
		o.Filter = sel
	}
	if h.query("sendInitialEvents") == "true" && h.query("allowWatchBookmarks") != "true" {
		return apierrors.NewBadRequest("sendInitialEvents requires allowWatchBookmarks=true")
	}
	f, ok := negotiate(h.r)
	if !ok || f.yaml {
		f = format{table: f.table}
	}
	timeout := defaultWatchTimeout
	if t := h.query("timeoutSeconds"); t != "" {
		secs, err := strconv.ParseInt(t, 10, 64)
		if err != nil || secs < 0 {
			return apierrors.NewBadRequest(fmt.Sprintf("invalid timeoutSeconds %q", t))
		}
		timeout = time.Duration(secs) * time.Second
	}
	ctx, cancel := context.WithTimeout(h.ctx(), timeout)
	defer cancel()
	events, err := h.st.Watch(ctx, h.ns, registry.WatchOptions{Filter: o.Filter, ResourceVersion: o.ResourceVersion,
		Bookmarks: h.query("allowWatchBookmarks") == "true", BookmarkInterval: h.s.cfg.BookmarkInterval,
		SendInitialEvents: h.query("sendInitialEvents") == "true"})
	if err != nil {
		return err
	}
	h.w.Header().Set("Content-Type", "application/json")
	h.w.Header().Set("Transfer-Encoding", "chunked")
	h.w.WriteHeader(http.StatusOK)
	flush(h.w)
	defer events.Stop()
	enc := json.NewEncoder(h.w)
	for {
		ev, ok := events.Next()
		if !ok {
			return nil
		}
		var err error
		if so, ok := ev.Object.(*registry.SharedObject); ok && !f.table {
			err = writeSharedEvent(h.w, ev.Type, so)
		} else {
			obj := ev.Object
			if so, ok := obj.(*registry.SharedObject); ok {
				obj = so.Object
			}
			var out any = obj
			if f.table && ev.Type != watch.Error && ev.Type != watch.Bookmark {
				out = h.st.Res.TableFor([]runtime.Object{obj}, h.query("includeObject"), false)
			}
			err = enc.Encode(watchEvent{Type: ev.Type, Object: out})
		}
		if err != nil {
			return nil // client went away
		}
		// One flush (an HTTP/2 frame, a TLS record, a write) for all
		// events that are ready: under load that is what keeps up.
		if !events.Ready() {
			flush(h.w)
		}
	}
}

// writeSharedEvent frames an object every watcher shares, encoded once, as
// the json.Encoder would: {"type":T,"object":OBJ}\n. It writes the pieces
// as they are (the response writer buffers) rather than copying the object
// into a frame per watcher: with a thousand watchers that copy was most of
// the fan-out's garbage.
func writeSharedEvent(w io.Writer, typ watch.EventType, so *registry.SharedObject) error {
	data, err := so.JSON()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, `{"type":"`+string(typ)+`","object":`); err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	_, err = io.WriteString(w, "}\n")
	return err
}

func flush(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

func joinSelectors(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
}
