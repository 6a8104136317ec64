package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
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
	enc := json.NewEncoder(h.w)
	for ev := range events {
		var obj any = ev.Object
		if f.table && ev.Type != watch.Error && ev.Type != watch.Bookmark {
			obj = h.st.Res.TableFor([]runtime.Object{ev.Object}, h.query("includeObject"), false)
		}
		if err := enc.Encode(watchEvent{Type: ev.Type, Object: obj}); err != nil {
			return nil // client went away
		}
		flush(h.w)
	}
	return nil
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
