// Package lifecycle runs containers' postStart and preStop hooks. The exec
// and httpGet handlers are the probe handlers of kubelet/probes (exec inside
// the container through the runtime, HTTP against the pod IP); sleep waits.
// A preStop hook runs within the termination grace period: whatever it
// uses is taken from the grace left for SIGTERM, as upstream.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/hoist-project/hoist/kubelet/probes"
)

// Event reasons, as upstream's kubelet emits them.
const (
	ReasonFailedPostStartHook = "FailedPostStartHook"
	ReasonFailedPreStopHook   = "FailedPreStopHook"
)

// MinStopGrace is the grace left for SIGTERM after a preStop hook that used
// up (nearly) all of the termination grace period (upstream: 2 s).
const MinStopGrace = 2 * time.Second

// HandlerRunner runs exec/httpGet handlers (kubelet/probes.Prober).
type HandlerRunner interface {
	RunHandler(ctx context.Context, t probes.Target, h v1.ProbeHandler) error
}

// Runner runs hooks.
type Runner struct {
	Handlers HandlerRunner
	Now      func() time.Time // default time.Now
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// PostStart runs t.Container's postStart hook (none: nil). It has no
// deadline of its own (as upstream); ctx bounds it.
func (r *Runner) PostStart(ctx context.Context, t probes.Target) error {
	lc := t.Container.Lifecycle
	if lc == nil || lc.PostStart == nil {
		return nil
	}
	if err := r.run(ctx, t, lc.PostStart); err != nil {
		return fmt.Errorf("postStart hook of container %s: %w", t.Container.Name, err)
	}
	return nil
}

// PreStop runs t.Container's preStop hook within grace and returns the
// grace left for stopping the container (at least MinStopGrace after a
// hook ran; none for a grace of 0) and the hook's error (the container is stopped regardless).
func (r *Runner) PreStop(ctx context.Context, t probes.Target, grace time.Duration) (time.Duration, error) {
	lc := t.Container.Lifecycle
	if lc == nil || lc.PreStop == nil || grace <= 0 { // no grace: killed at once, as upstream
		return grace, nil
	}
	start := r.now()
	hctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	err := r.run(hctx, t, lc.PreStop)
	if err != nil && hctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("did not finish within the grace period %s: %w", grace, err)
	}
	if err != nil {
		err = fmt.Errorf("preStop hook of container %s: %w", t.Container.Name, err)
	}
	return max(grace-r.now().Sub(start), MinStopGrace), err
}

func (r *Runner) run(ctx context.Context, t probes.Target, h *v1.LifecycleHandler) error {
	switch {
	case h.Exec != nil:
		return r.Handlers.RunHandler(ctx, t, v1.ProbeHandler{Exec: h.Exec})
	case h.HTTPGet != nil:
		return r.Handlers.RunHandler(ctx, t, v1.ProbeHandler{HTTPGet: h.HTTPGet})
	case h.Sleep != nil:
		select {
		case <-time.After(time.Duration(h.Sleep.Seconds) * time.Second):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	case h.TCPSocket != nil:
		return errors.New("tcpSocket lifecycle handlers are not supported (deprecated upstream); use exec or httpGet")
	}
	return errors.New("hook has no handler (exec, httpGet or sleep)")
}
