// Package podsync holds the kubelet's per-pod logic: given a pod's spec and
// what containerd has, start/restart/remove containers (SyncPod) or tear the
// whole pod down (KillPod). Pod workers call it, one pod at a time; it keeps
// only the CrashLoopBackOff state in memory, everything else is re-read from
// the runtime each time (level-triggered: a restart loses nothing).
package podsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"

	"github.com/hoist-project/hoist/kubelet/backoff"
	"github.com/hoist-project/hoist/kubelet/images"
	"github.com/hoist-project/hoist/kubelet/lifecycle"
	"github.com/hoist-project/hoist/kubelet/probes"
	"github.com/hoist-project/hoist/kubelet/runtime"
	"github.com/hoist-project/hoist/kubelet/startslots"
	"github.com/hoist-project/hoist/kubelet/status"
	"github.com/hoist-project/hoist/kubelet/volumes"
)

// Runtime is what the syncer needs from kubelet/runtime (a fake in unit tests).
type Runtime interface {
	GetPod(ctx context.Context, uid types.UID) (*runtime.Pod, error)
	CreateSandbox(ctx context.Context, pod *v1.Pod) (*runtime.Sandbox, error)
	RemoveSandbox(ctx context.Context, pod *runtime.Pod, sb *runtime.Sandbox) error
	StartContainer(ctx context.Context, s runtime.StartSpec) (string, error)
	RemoveContainer(ctx context.Context, id string, grace time.Duration) error
	StopContainer(ctx context.Context, id string, grace time.Duration) error
	RemovePodCgroup(uid types.UID) error
	PodLogDir(ns, name, uid string) string
}

// Prober is what the syncer needs from the probe manager (kubelet/probes).
type Prober interface {
	Sync(ctx context.Context, pod *v1.Pod, podIP string, running []probes.Running)
	Apply(st *v1.PodStatus)
	State(containerID string) (ready, started bool, kill string, ok bool)
	Forget(uid types.UID)
}

// Images is what the syncer needs from the image manager (kubelet/images).
type Images interface {
	// Ensure makes c's image available and returns the name to run it
	// under; a failure is an *images.Error naming the waiting reason.
	Ensure(ctx context.Context, pod *v1.Pod, c *v1.Container) (string, error)
	// EnsureSandboxImage makes the pause image available (pulling it).
	EnsureSandboxImage(ctx context.Context, ref string) (string, error)
	Forget(pod *v1.Pod)
}

// Syncer runs pods on the runtime.
type Syncer struct {
	Runtime Runtime
	Images  Images               // optional: without it images must be present already
	Probes  Prober               // optional: without it a running container is ready
	Hooks   *lifecycle.Runner    // optional: without it postStart/preStop hooks are not run
	Events  record.EventRecorder // optional
	Volumes *volumes.Manager
	Status  *status.Manager
	// Starts, if set, bounds the sandbox creations and container starts in
	// flight, oldest pod first (kubelet/startslots).
	Starts  *startslots.Slots
	Backoff backoff.Policy
	HostIP  string
	// PauseImage is pulled through Images before a sandbox is created when
	// it is not present ("": the runtime must have it).
	PauseImage string
	Now        func() time.Time
	Log        *slog.Logger

	mu       sync.Mutex
	backoffs map[string]*crashLoop // pod UID/container name
}

// crashLoop is a container's back-off state and the last exit folded into it.
type crashLoop struct {
	state  backoff.State
	exitOf string // container ID whose exit is in state
}

func (s *Syncer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// SyncPod drives one pod toward its spec and returns when to look again.
func (s *Syncer) SyncPod(ctx context.Context, pod *v1.Pod) (time.Duration, error) {
	waiting := map[string]status.Waiting{}
	rp, err := s.Runtime.GetPod(ctx, pod.UID)
	if err != nil {
		return 0, err
	}
	defer func() {
		if fresh, err := s.Runtime.GetPod(context.WithoutCancel(ctx), pod.UID); err == nil {
			rp = fresh
		}
		st := status.Compute(status.Input{Pod: pod, Runtime: rp, Waiting: waiting, HostIP: s.HostIP, Now: s.now()})
		if s.Probes != nil {
			s.Probes.Sync(ctx, pod, st.PodIP, runningContainers(pod, rp))
			s.Probes.Apply(&st)
		}
		s.Status.Set(pod, st)
	}()
	if phase := status.Compute(status.Input{Pod: pod, Runtime: rp, Now: s.now()}).Phase; phase == v1.PodSucceeded || phase == v1.PodFailed {
		return 0, nil // finished pods are not restarted
	}
	sb := rp.LiveSandbox()
	if err := s.removeStale(ctx, rp, sb); err != nil {
		return 0, err
	}
	vols, err := s.Volumes.Prepare(pod)
	if err != nil {
		return 0, err
	}
	if sb == nil {
		if s.Images != nil && s.PauseImage != "" {
			if _, err := s.Images.EnsureSandboxImage(ctx, s.PauseImage); err != nil {
				return 0, err
			}
		}
		if err := s.gated(ctx, pod.UID, func() (err error) {
			sb, err = s.Runtime.CreateSandbox(ctx, pod)
			return err
		}); err != nil {
			return 0, err
		}
		s.Log.Info("sandbox started", "pod", podName(pod), "ip", sb.IP, "sandbox", sb.ID)
		if rp, err = s.Runtime.GetPod(ctx, pod.UID); err != nil {
			return 0, err
		}
	}
	var imageRetry time.Duration // when to look again at an image that is not there
	start := func(c *v1.Container, kind runtime.Kind, restart int, last *runtime.Exit, replace *runtime.Container, replaceGrace time.Duration) error {
		image, err := s.ensureImage(ctx, pod, c, waiting)
		if err != nil {
			var ie *images.Error
			if !errors.As(err, &ie) {
				return err
			}
			imageRetry = earliest(imageRetry, imageRetryAfter(ie.Reason))
			return nil // the container waits (the run it replaces is kept); its status says why
		}
		if replace != nil {
			if err := s.Runtime.RemoveContainer(ctx, replace.ID, s.preStop(ctx, pod, c, replace, sb, replaceGrace)); err != nil {
				return err
			}
		}
		var id string
		err = s.gated(ctx, pod.UID, func() (err error) {
			id, err = s.Runtime.StartContainer(ctx, runtime.StartSpec{
				Pod: pod, Container: c, Kind: kind, Sandbox: sb, Restart: restart, Last: last, Volumes: vols, HostIP: s.HostIP, Image: image,
			})
			return err
		})
		if err != nil {
			waiting[c.Name] = status.Waiting{Reason: "CreateContainerError", Message: err.Error()}
			return fmt.Errorf("container %s: %w", c.Name, err)
		}
		s.Log.Info("container started", "pod", podName(pod), "container", c.Name, "restart", restart, "id", id)
		return s.postStart(ctx, pod, c, id, sb)
	}
	var next time.Duration
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		done, wait, err := s.syncContainer(ctx, pod, rp, sb, c, runtime.KindInit, waiting, start)
		if err != nil || !done {
			return earliest(wait, imageRetry), err
		}
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		_, wait, err := s.syncContainer(ctx, pod, rp, sb, c, runtime.KindApp, waiting, start)
		if err != nil {
			return 0, err
		}
		next = earliest(next, wait)
	}
	return earliest(next, imageRetry), nil
}

// gated runs fn, the expensive part of a pod start, holding a start slot.
func (s *Syncer) gated(ctx context.Context, uid types.UID, fn func() error) error {
	if s.Starts == nil {
		return fn()
	}
	if err := s.Starts.Acquire(ctx, uid); err != nil {
		return err
	}
	defer s.Starts.Release()
	return fn()
}

// earliest returns the sooner of two "look again in" durations (0: never).
func earliest(a, b time.Duration) time.Duration {
	if a == 0 || (b > 0 && b < a) {
		return b
	}
	return a
}

// imageRetryAfter is when a sync looks again at a missing image: soon after
// a failed pull, so the status moves on to ImagePullBackOff; the image
// manager itself decides when the back-off allows the next pull.
func imageRetryAfter(reason string) time.Duration {
	switch reason {
	case images.ReasonErrImagePull, images.ReasonImagePullBackOff:
		return time.Second
	}
	return 0 // a bad name or pull policy Never: the periodic resync retries
}

// ensureImage makes a container's image available through the image
// manager, recording why a container has to wait.
func (s *Syncer) ensureImage(ctx context.Context, pod *v1.Pod, c *v1.Container, waiting map[string]status.Waiting) (string, error) {
	if s.Images == nil {
		return c.Image, nil
	}
	image, err := s.Images.Ensure(ctx, pod, c)
	var ie *images.Error
	if errors.As(err, &ie) {
		waiting[c.Name] = status.Waiting{Reason: ie.Reason, Message: ie.Message}
	}
	return image, err
}

// startFunc starts a container once its image is there, first removing the
// run it replaces (if any) with the given grace.
type startFunc func(c *v1.Container, kind runtime.Kind, restart int, last *runtime.Exit, replace *runtime.Container, replaceGrace time.Duration) error

// syncContainer handles one container. done is true once an init container
// has succeeded (app containers: always); wait > 0 asks for a sync then.
func (s *Syncer) syncContainer(ctx context.Context, pod *v1.Pod, rp *runtime.Pod, sb *runtime.Sandbox, c *v1.Container,
	kind runtime.Kind, waiting map[string]status.Waiting, start startFunc) (done bool, wait time.Duration, err error) {
	cur := rp.Latest(sb.ID, c.Name)
	// Older runs of this container are history: keep only the latest.
	for _, old := range rp.Containers {
		if old.Name == c.Name && (cur == nil || old.ID != cur.ID) {
			if err := s.Runtime.RemoveContainer(ctx, old.ID, 0); err != nil {
				return false, 0, err
			}
		}
	}
	switch {
	case cur == nil:
		return kind == runtime.KindApp, 0, start(c, kind, 0, nil, nil, 0)
	case cur.State == runtime.StateCreated:
		// Created but never started (a failed start or a crash in between).
		return kind == runtime.KindApp, 0, start(c, kind, cur.Restart, cur.Last, cur, 0)
	case cur.State == runtime.StateRunning:
		if kill := s.probeKill(cur.ID); kill != "" {
			// A failed liveness/startup probe: stop it; the exit then goes
			// through the restart policy and back-off like any other.
			s.Log.Info("container failed its probe; killing", "pod", podName(pod), "container", c.Name, "reason", kill)
			if err := s.Runtime.StopContainer(ctx, cur.ID, s.preStop(ctx, pod, c, cur, sb, grace(pod))); err != nil {
				return false, 0, err
			}
			return kind == runtime.KindApp, 100 * time.Millisecond, nil
		}
		if cur.Hash != runtime.ContainerHash(c) {
			s.Log.Info("container spec changed; restarting", "pod", podName(pod), "container", c.Name)
			return kind == runtime.KindApp, 0, start(c, kind, cur.Restart+1, nil, cur, grace(pod))
		}
		return kind == runtime.KindApp, 0, nil
	}
	// Exited.
	ok := cur.Exit.Code == 0
	if kind == runtime.KindInit && ok {
		return true, 0, nil
	}
	policy := pod.Spec.RestartPolicy
	if policy == v1.RestartPolicyNever || (policy == v1.RestartPolicyOnFailure && ok) {
		return kind == runtime.KindApp, 0, nil
	}
	st := s.crashLoop(pod.UID, c.Name, cur)
	if w, left := st.Waiting(s.now()); w {
		waiting[c.Name] = status.Waiting{
			Reason:  "CrashLoopBackOff",
			Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", st.Delay, c.Name, podName(pod)),
		}
		return false, left, nil
	}
	return kind == runtime.KindApp, 0, start(c, kind, cur.Restart+1, cur.Exit, cur, 0)
}

func (s *Syncer) probeKill(id string) string {
	if s.Probes == nil {
		return ""
	}
	_, _, kill, _ := s.Probes.State(id)
	return kill
}

// runningContainers lists the pod's running app containers in the live
// sandbox, for the probe manager.
func runningContainers(pod *v1.Pod, rp *runtime.Pod) []probes.Running {
	sb := rp.LiveSandbox()
	if sb == nil {
		return nil
	}
	var out []probes.Running
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if cur := rp.Latest(sb.ID, c.Name); cur != nil && cur.State == runtime.StateRunning {
			out = append(out, probes.Running{Container: c, ID: cur.ID, StartedAt: cur.StartedAt})
		}
	}
	return out
}

// crashLoop folds a container's exit into its back-off state (once per run).
func (s *Syncer) crashLoop(uid types.UID, name string, c *runtime.Container) backoff.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.backoffs == nil {
		s.backoffs = map[string]*crashLoop{}
	}
	key := string(uid) + "/" + name
	cl := s.backoffs[key]
	if cl == nil {
		cl = &crashLoop{}
		s.backoffs[key] = cl
	}
	if cl.exitOf != c.ID {
		cl.state = s.Backoff.Exited(cl.state, c.Exit.StartedAt, c.Exit.FinishedAt)
		cl.exitOf = c.ID
	}
	return cl.state
}

// removeStale tears down sandboxes other than keep, with their containers.
func (s *Syncer) removeStale(ctx context.Context, rp *runtime.Pod, keep *runtime.Sandbox) error {
	for _, sb := range rp.Sandboxes {
		if keep != nil && sb.ID == keep.ID {
			continue
		}
		for _, c := range rp.Containers {
			if c.SandboxID == sb.ID {
				if err := s.Runtime.RemoveContainer(ctx, c.ID, rp.Grace); err != nil {
					return err
				}
			}
		}
		if err := s.Runtime.RemoveSandbox(ctx, rp, sb); err != nil {
			return err
		}
		s.Log.Info("stale sandbox removed", "pod", rp.Namespace+"/"+rp.Name, "sandbox", sb.ID)
	}
	return nil
}

// KillPod stops every container of the pod (preStop hook, SIGTERM, the rest
// of the grace, SIGKILL — all containers in parallel), removes the sandboxes (CNI DEL, netns), the pod
// cgroup, volumes and logs.
func (s *Syncer) KillPod(ctx context.Context, pod *v1.Pod) error {
	return s.StopPod(ctx, pod, -1)
}

// StopPod is KillPod with the pod's grace period capped at maxGrace (< 0:
// no cap): the kubelet's stop-all uses it to fit every pod into one
// deadline. The cap covers the preStop hook and SIGTERM alike.
func (s *Syncer) StopPod(ctx context.Context, pod *v1.Pod, maxGrace time.Duration) error {
	rp, err := s.Runtime.GetPod(ctx, pod.UID)
	if err != nil {
		return err
	}
	g := grace(pod)
	if pod.Spec.TerminationGracePeriodSeconds == nil && rp.Grace > 0 {
		g = rp.Grace
	}
	if maxGrace >= 0 && g > maxGrace {
		g = maxGrace
	}
	errs := make([]error, len(rp.Containers))
	var wg sync.WaitGroup
	for i, c := range rp.Containers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Runtime.RemoveContainer(ctx, c.ID, s.preStop(ctx, pod, specOf(pod, c.Name), c, sandboxOf(rp, c.SandboxID), g))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, sb := range rp.Sandboxes {
		if err := s.Runtime.RemoveSandbox(ctx, rp, sb); err != nil {
			return err
		}
	}
	if err := s.Runtime.RemovePodCgroup(pod.UID); err != nil {
		return fmt.Errorf("remove cgroup of pod %s: %w", podName(pod), err)
	}
	if err := s.Volumes.Cleanup(string(pod.UID)); err != nil {
		return err
	}
	ns, name := pod.Namespace, pod.Name
	if ns == "" {
		ns, name = rp.Namespace, rp.Name
	}
	if err := os.RemoveAll(s.Runtime.PodLogDir(ns, name, string(pod.UID))); err != nil {
		return err
	}
	s.Status.Forget(pod.UID)
	if s.Starts != nil {
		s.Starts.Forget(pod.UID)
	}
	if s.Images != nil {
		s.Images.Forget(pod)
	}
	if s.Probes != nil {
		s.Probes.Forget(pod.UID)
	}
	s.mu.Lock()
	for _, c := range append(append([]v1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		delete(s.backoffs, string(pod.UID)+"/"+c.Name)
	}
	s.mu.Unlock()
	if len(rp.Sandboxes)+len(rp.Containers) > 0 {
		s.Log.Info("pod removed", "pod", podName(pod), "uid", pod.UID)
	}
	return nil
}

func grace(pod *v1.Pod) time.Duration {
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return time.Duration(*g) * time.Second
	}
	return time.Duration(v1.DefaultTerminationGracePeriodSeconds) * time.Second
}

func podName(pod *v1.Pod) string { return pod.Namespace + "/" + pod.Name }
