package podsync

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/hoist-project/hoist/kubelet/lifecycle"
	"github.com/hoist-project/hoist/kubelet/probes"
	"github.com/hoist-project/hoist/kubelet/runtime"
)

// hookTarget is what a hook of container c (running as id) runs against.
func hookTarget(c *v1.Container, id string, sb *runtime.Sandbox) probes.Target {
	t := probes.Target{ContainerID: id, Container: c}
	if sb != nil && sb.IP != nil {
		t.PodIP = sb.IP.String()
	}
	return t
}

// postStart runs c's postStart hook right after the container started. A
// failing hook kills the container (as upstream); its exit then goes
// through the restart policy and back-off like any other.
func (s *Syncer) postStart(ctx context.Context, pod *v1.Pod, c *v1.Container, id string, sb *runtime.Sandbox) error {
	if s.Hooks == nil {
		return nil
	}
	err := s.Hooks.PostStart(ctx, hookTarget(c, id, sb))
	if err == nil {
		return nil
	}
	s.Log.Warn("postStart hook failed; killing the container", "pod", podName(pod), "container", c.Name, "err", err)
	s.event(pod, v1.EventTypeWarning, lifecycle.ReasonFailedPostStartHook, "%v", err)
	return s.Runtime.StopContainer(ctx, id, grace(pod))
}

// preStop runs the preStop hook of a running container about to be stopped
// with grace g and returns the grace left for SIGTERM.
func (s *Syncer) preStop(ctx context.Context, pod *v1.Pod, c *v1.Container, cur *runtime.Container, sb *runtime.Sandbox, g time.Duration) time.Duration {
	if s.Hooks == nil || c == nil || cur.State != runtime.StateRunning {
		return g
	}
	left, err := s.Hooks.PreStop(ctx, hookTarget(c, cur.ID, sb), g)
	if err != nil {
		s.Log.Warn("preStop hook failed", "pod", podName(pod), "container", c.Name, "err", err)
		s.event(pod, v1.EventTypeWarning, lifecycle.ReasonFailedPreStopHook, "%v", err)
	}
	return left
}

func (s *Syncer) event(pod *v1.Pod, typ, reason, format string, args ...any) {
	if s.Events != nil {
		s.Events.Eventf(pod, typ, reason, format, args...)
	}
}

// specOf finds the app container named name in the pod's spec (nil: none,
// e.g. an orphan known only from the runtime).
func specOf(pod *v1.Pod, name string) *v1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

// sandboxOf returns the sandbox with the given ID (nil: none).
func sandboxOf(rp *runtime.Pod, id string) *runtime.Sandbox {
	for _, sb := range rp.Sandboxes {
		if sb.ID == id {
			return sb
		}
	}
	return nil
}
