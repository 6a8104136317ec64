// Package statussync writes what the kubelet knows to the API server: pod
// status to the pods/status subresource (Writer, a status.Sink: only when it
// changed, retried until it lands, conflicts resolved by re-reading) and
// mirror pods for static pods (Mirrors: created, recreated when deleted,
// replaced when stale).
package statussync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/hoist-project/hoist/kubelet/apisource"
	"github.com/hoist-project/hoist/kubelet/config"
	"github.com/hoist-project/hoist/kubelet/status"
)

// Writer is a status.Sink that writes pod status to the API. Changes are
// queued and written by Run, so a slow or absent API server never blocks a
// pod worker; a failed write is retried with back-off, and only the latest
// status of a pod is ever written.
type Writer struct {
	Client kubernetes.Interface
	Log    *slog.Logger
	Retry  time.Duration // first retry delay (doubling to 30 s), default 1 s
	// Parallel is how many pods' statuses are written at once (default 8):
	// when a batch of pods starts, one write at a time, each a read and a
	// write round trip to a busy API server, is what pods wait on last.
	Parallel int

	mu      sync.Mutex
	pending map[types.UID]entry
	latest  map[types.UID]entry        // every pod's newest status (for Resend)
	written map[types.UID]v1.PodStatus // last status that landed
	kick    chan struct{}
}

type entry struct {
	pod    *v1.Pod
	status v1.PodStatus
}

var _ status.Sink = (*Writer)(nil)

// errNoMirror: a static pod's status waits for its mirror pod.
var errNoMirror = errors.New("no mirror pod yet")

func (w *Writer) init() {
	if w.pending == nil {
		w.pending, w.latest, w.written = map[types.UID]entry{}, map[types.UID]entry{}, map[types.UID]v1.PodStatus{}
		w.kick = make(chan struct{}, 1)
	}
}

// PodStatusChanged queues a status for writing.
func (w *Writer) PodStatusChanged(pod *v1.Pod, st v1.PodStatus) {
	w.mu.Lock()
	w.init()
	w.latest[pod.UID] = entry{pod: pod, status: st}
	if last, ok := w.written[pod.UID]; ok && apiequality.Semantic.DeepEqual(last, st) {
		delete(w.pending, pod.UID)
		w.mu.Unlock()
		return
	}
	w.pending[pod.UID] = entry{pod: pod, status: st}
	w.mu.Unlock()
	w.Kick()
}

// Kick makes Run write what is pending now (e.g. a mirror pod appeared).
func (w *Writer) Kick() {
	w.mu.Lock()
	w.init()
	kick := w.kick
	w.mu.Unlock()
	select {
	case kick <- struct{}{}:
	default:
	}
}

// Resend writes a pod's latest status again (its API object was recreated,
// e.g. a mirror pod, so what was written before is gone).
func (w *Writer) Resend(uid types.UID) {
	w.mu.Lock()
	w.init()
	delete(w.written, uid)
	if e, ok := w.latest[uid]; ok {
		w.pending[uid] = e
	}
	w.mu.Unlock()
	w.Kick()
}

// PodRemoved forgets a pod the kubelet no longer runs.
func (w *Writer) PodRemoved(uid types.UID) {
	w.mu.Lock()
	w.init()
	delete(w.pending, uid)
	delete(w.latest, uid)
	delete(w.written, uid)
	w.mu.Unlock()
}

// Run writes queued statuses until ctx ends.
func (w *Writer) Run(ctx context.Context) error {
	w.mu.Lock()
	w.init()
	kick := w.kick
	w.mu.Unlock()
	first := w.Retry
	if first <= 0 {
		first = time.Second
	}
	delay := first
	var retryc <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-kick:
		case <-retryc:
		}
		if w.Flush(ctx) {
			delay, retryc = first, nil
			continue
		}
		retryc = time.After(delay)
		delay = min(2*delay, 30*time.Second)
	}
}

// Flush writes every queued status once, several pods at a time; it
// reports whether all landed.
func (w *Writer) Flush(ctx context.Context) bool {
	w.mu.Lock()
	w.init()
	batch := make([]entry, 0, len(w.pending))
	for _, e := range w.pending {
		batch = append(batch, e)
	}
	w.mu.Unlock()
	parallel := w.Parallel
	if parallel <= 0 {
		parallel = 8
	}
	var failed atomic.Bool
	var wg sync.WaitGroup
	slots := make(chan struct{}, parallel)
	for _, e := range batch {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			if !w.flushOne(ctx, e) {
				failed.Store(true)
			}
		}()
	}
	wg.Wait()
	return !failed.Load()
}

// flushOne writes one pod's queued status and settles its bookkeeping.
func (w *Writer) flushOne(ctx context.Context, e entry) bool {
	err := w.write(ctx, e)
	w.mu.Lock()
	if cur, still := w.pending[e.pod.UID]; still && apiequality.Semantic.DeepEqual(cur.status, e.status) {
		if err == nil || apierrors.IsNotFound(err) {
			delete(w.pending, e.pod.UID) // landed, or the pod is gone from the API
		}
	}
	if err == nil {
		w.written[e.pod.UID] = e.status
	}
	w.mu.Unlock()
	if err != nil && !apierrors.IsNotFound(err) && err != errNoMirror {
		w.log().Warn("pod status not written; will retry", "pod", e.pod.Namespace+"/"+e.pod.Name, "err", err)
		return false
	}
	return true
}

func (w *Writer) log() *slog.Logger {
	if w.Log == nil {
		return slog.Default()
	}
	return w.Log
}

// write puts one status on the API pod (the mirror pod for a static pod).
// A conflict re-reads the pod and tries again.
func (w *Writer) write(ctx context.Context, e entry) error {
	pods := w.Client.CoreV1().Pods(e.pod.Namespace)
	static := e.pod.Annotations[config.ConfigSourceAnnotation] != apisource.SourceName
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := pods.Get(ctx, e.pod.Name, metav1.GetOptions{})
		if static && apierrors.IsNotFound(err) {
			return errNoMirror
		}
		if err != nil {
			return err
		}
		switch {
		case static && cur.Annotations[apisource.MirrorAnnotation] != e.pod.Annotations[config.ConfigHashAnnotation]:
			return errNoMirror // kept pending: Kick once the mirror pod exists
		case !static && cur.UID != e.pod.UID:
			return apierrors.NewNotFound(v1.Resource("pods"), e.pod.Name) // replaced by a new pod of that name
		}
		st := e.status
		if cur.Status.NominatedNodeName != "" {
			st.NominatedNodeName = cur.Status.NominatedNodeName
		}
		if apiequality.Semantic.DeepEqual(cur.Status, st) {
			return nil
		}
		cur.Status = st
		_, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("update status of pod %s/%s: %w", e.pod.Namespace, e.pod.Name, err)
		}
		return nil
	})
}
