// Package runtime runs pods on containerd: a sandbox is a named network
// namespace attached by CNI plus a pause container in it; app and init
// containers join the pause container's network, IPC and UTS namespaces.
// Every container carries labels (see state.go) from which the kubelet
// rebuilds its whole view after a restart; sandbox checkpoints on disk cover
// the window in which a netns exists before its pause container does.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/namespaces"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hoist-project/hoist/kubelet/network"
	"github.com/hoist-project/hoist/kubelet/runtime/crilog"
)

// Network attaches sandboxes to the pod network (kubelet/network implements it).
type Network interface {
	Setup(ctx context.Context, a network.Attachment) (net.IP, error)
	Teardown(ctx context.Context, a network.Attachment) error
}

// Config of the runtime.
type Config struct {
	Client       *containerd.Client
	Namespace    string // containerd namespace, e.g. k8s.hoist
	RootDir      string // kubelet root: sandbox checkpoints live under it
	LogRoot      string // CRI logs: <LogRoot>/<ns>_<name>_<uid>/<container>/<restart>.log
	PauseImage   string
	CgroupParent string // e.g. kubepods
	// LogDriver is the executable containerd's shim runs as logging driver
	// (`<LogDriver> kubelet --log-driver=<file>`): hoist-log-driver.
	LogDriver string
	// LogRotation limits each container's log file (zero: no rotation).
	LogRotation crilog.Rotation
	Network     Network
	// ResolvConf is the node's resolver configuration copied into pods
	// ("" = none; the kubelet passes /etc/resolv.conf by default).
	ResolvConf string
	// Log receives what the runtime repairs on its own (default slog.Default()).
	Log *slog.Logger
}

// Runtime performs pod and container operations on containerd.
type Runtime struct {
	cfg    Config
	client *containerd.Client
	ckpt   *checkpoints
	images imageFacts
	index  podIndex
}

// New checks cfg and returns a runtime; it removes half-written sandbox
// checkpoints, so call it once at start.
func New(cfg Config) (*Runtime, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("runtime: no containerd client")
	case cfg.Namespace == "":
		return nil, errors.New("runtime: no containerd namespace")
	case cfg.RootDir == "" || cfg.LogRoot == "":
		return nil, errors.New("runtime: root dir and log root are required")
	case cfg.PauseImage == "":
		return nil, errors.New("runtime: no pause image")
	case cfg.LogDriver == "":
		return nil, errors.New("runtime: no logging driver executable")
	case cfg.Network == nil:
		return nil, errors.New("runtime: no network")
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "kubepods"
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	r := &Runtime{cfg: cfg, client: cfg.Client, ckpt: newCheckpoints(cfg.RootDir+"/sandboxes", cfg.Log)}
	if err := r.ckpt.sweepTemp(); err != nil {
		return nil, fmt.Errorf("sandbox checkpoints: %w", err)
	}
	return r, nil
}

func (r *Runtime) ns(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, r.cfg.Namespace)
}

// PodRef names a pod found in the runtime.
type PodRef struct {
	UID             types.UID
	Name, Namespace string
}

// ListPodRefs returns the pods that have containers or sandbox checkpoints,
// from labels alone (one containerd call, no task queries): cheap enough for
// the periodic orphan scan. Sandboxes of no known pod (a corrupt checkpoint
// with no pause container left) are torn down here, as no pod worker owns them.
func (r *Runtime) ListPodRefs(ctx context.Context) (map[types.UID]PodRef, error) {
	ctx = r.ns(ctx)
	refs, err := r.scanContainers(ctx)
	if err != nil {
		return nil, err
	}
	cps, err := r.ckpt.list(r.rebuildCheckpoint(ctx))
	if err != nil {
		return nil, err
	}
	for _, cp := range cps {
		if cp.PodUID == "" {
			r.teardownPodless(ctx, cp)
			continue
		}
		if _, ok := refs[cp.PodUID]; !ok {
			refs[cp.PodUID] = PodRef{UID: cp.PodUID, Name: cp.PodName, Namespace: cp.PodNamespace}
		}
	}
	return refs, nil
}

// scanContainers lists every container of a pod (one containerd call,
// labels only) and merges what it finds into the pod index.
func (r *Runtime) scanContainers(ctx context.Context) (map[types.UID]PodRef, error) {
	ctrs, err := r.client.Containers(ctx, fmt.Sprintf("labels.%q", LabelPodUID))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	refs := map[types.UID]PodRef{}
	found := make(map[string]types.UID, len(ctrs))
	for _, c := range ctrs {
		info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
		if err != nil {
			continue // deleted meanwhile
		}
		l := info.Labels
		uid := types.UID(l[LabelPodUID])
		refs[uid] = PodRef{UID: uid, Name: l[LabelPodName], Namespace: l[LabelPodNamespace]}
		found[c.ID()] = uid
	}
	r.index.merge(found)
	return refs, nil
}

// GetPod returns what containerd and the sandbox checkpoints hold for one
// pod; it never returns nil. Exits seen for the first time are recorded in
// labels and the finished task is deleted (which frees the shim and keeps
// the exit status).
func (r *Runtime) GetPod(ctx context.Context, uid types.UID) (*Pod, error) {
	ctx = r.ns(ctx)
	ctrs, err := r.podContainers(ctx, uid)
	if err != nil {
		return nil, err
	}
	pods, err := r.build(ctx, ctrs, uid)
	if err != nil {
		return nil, err
	}
	if p := pods[uid]; p != nil {
		return p, nil
	}
	return &Pod{UID: uid}, nil
}

// build turns containers (and the sandbox checkpoints of pod only, or of
// every pod if only is empty) into pods.
func (r *Runtime) build(ctx context.Context, ctrs []containerd.Container, only types.UID) (map[types.UID]*Pod, error) {
	pods := map[types.UID]*Pod{}
	pod := func(uid types.UID, name, ns string) *Pod {
		p := pods[uid]
		if p == nil {
			p = &Pod{UID: uid, Name: name, Namespace: ns}
			pods[uid] = p
		}
		return p
	}
	for _, c := range ctrs {
		info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		l := info.Labels
		p := pod(types.UID(l[LabelPodUID]), l[LabelPodName], l[LabelPodNamespace])
		if g, err := strconv.ParseInt(l[LabelGrace], 10, 64); err == nil {
			p.Grace = time.Duration(g) * time.Second
		}
		state, pid, exit, err := r.observe(ctx, c, l)
		if err != nil {
			return nil, err
		}
		if Kind(l[LabelKind]) == KindSandbox {
			p.Sandboxes = append(p.Sandboxes, &Sandbox{
				ID: c.ID(), NetNS: l[LabelNetNS], IP: net.ParseIP(l[LabelPodIP]),
				Running: state == StateRunning, Pid: pid, CreatedAt: info.CreatedAt,
			})
			continue
		}
		restart, _ := strconv.Atoi(l[LabelRestart])
		last := exitFromLabels(l, LabelLastExitCode, LabelLastStarted, LabelLastFinished)
		if exit != nil {
			exit.Message = r.terminationMessage(l, restart, exit)
		}
		if last != nil {
			last.Message = r.terminationMessage(l, restart-1, last)
		}
		p.Containers = append(p.Containers, &Container{
			ID: c.ID(), Name: l[LabelContainerName], Kind: Kind(l[LabelKind]), SandboxID: l[LabelSandboxID],
			Restart: restart, Hash: l[LabelHash], Image: info.Image, State: state, Pid: pid,
			StartedAt: parseTime(l[LabelStartedAt]), Exit: exit, CreatedAt: info.CreatedAt, Last: last,
		})
	}
	cps, err := r.ckpt.list(r.rebuildCheckpoint(ctx))
	if err != nil {
		return nil, err
	}
	for _, cp := range cps {
		if cp.PodUID == "" || only != "" && cp.PodUID != only {
			continue // "": of no pod, ListPodRefs tears it down
		}
		p := pod(cp.PodUID, cp.PodName, cp.PodNamespace)
		found := false
		for _, s := range p.Sandboxes {
			found = found || s.ID == cp.ID
		}
		if !found {
			p.Sandboxes = append(p.Sandboxes, &Sandbox{ID: cp.ID, NetNS: cp.NetNS, Orphan: true})
		}
	}
	for _, p := range pods {
		p.sortContainers()
	}
	return pods, nil
}

// observe returns a container's state. A task that has exited gets its exit
// recorded in the container's labels and is deleted.
func (r *Runtime) observe(ctx context.Context, c containerd.Container, l map[string]string) (State, uint32, *Exit, error) {
	if e := exitFromLabels(l, LabelExitCode, LabelStartedAt, LabelFinishedAt); e != nil {
		return StateExited, 0, e, nil
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		if l[LabelStartedAt] != "" {
			// Started, but the task is gone without a recorded exit (e.g.
			// containerd restarted): treat it as a failure.
			return StateExited, 0, &Exit{Code: 255, StartedAt: parseTime(l[LabelStartedAt]), FinishedAt: time.Now()}, nil
		}
		return StateCreated, 0, nil, nil
	}
	if err != nil {
		return "", 0, nil, fmt.Errorf("task of %s: %w", c.ID(), err)
	}
	st, err := task.Status(ctx)
	if errdefs.IsNotFound(err) {
		// Another caller recorded the exit and deleted the task just now.
		if l, lerr := c.Labels(ctx); lerr == nil {
			if e := exitFromLabels(l, LabelExitCode, LabelStartedAt, LabelFinishedAt); e != nil {
				return StateExited, 0, e, nil
			}
		}
	}
	if err != nil {
		return "", 0, nil, fmt.Errorf("status of %s: %w", c.ID(), err)
	}
	switch st.Status {
	case containerd.Running, containerd.Paused, containerd.Pausing:
		return StateRunning, task.Pid(), nil, nil
	case containerd.Created:
		return StateCreated, task.Pid(), nil, nil
	}
	exit := &Exit{Code: int(st.ExitStatus), StartedAt: parseTime(l[LabelStartedAt]), FinishedAt: st.ExitTime}
	if err := r.recordExit(ctx, c, task, exit); err != nil {
		return "", 0, nil, err
	}
	return StateExited, 0, exit, nil
}

func (r *Runtime) recordExit(ctx context.Context, c containerd.Container, task containerd.Task, e *Exit) error {
	if _, err := c.SetLabels(ctx, map[string]string{
		LabelExitCode: strconv.Itoa(e.Code), LabelFinishedAt: formatTime(e.FinishedAt),
	}); err != nil {
		return fmt.Errorf("record exit of %s: %w", c.ID(), err)
	}
	if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete task of %s: %w", c.ID(), err)
	}
	return nil
}

// PodUIDOf returns the pod UID label of a container ("" if it is not ours).
func (r *Runtime) PodUIDOf(ctx context.Context, id string) types.UID {
	ctx = r.ns(ctx)
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return ""
	}
	l, err := c.Labels(ctx)
	if err != nil {
		return ""
	}
	return types.UID(l[LabelPodUID])
}

// stopTask stops a task: SIGTERM, wait up to grace, then SIGKILL; the exit is
// recorded and the task deleted. A container with no task is left as is.
func (r *Runtime) stopTask(ctx context.Context, c containerd.Container, grace time.Duration) error {
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	exitc, err := task.Wait(ctx)
	if err != nil {
		return fmt.Errorf("wait on %s: %w", c.ID(), err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return err
	}
	if st.Status == containerd.Running || st.Status == containerd.Created || st.Status == containerd.Paused {
		sig := syscall.SIGTERM
		if grace <= 0 {
			sig = syscall.SIGKILL
		}
		if err := task.Kill(ctx, sig); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("signal %s: %w", c.ID(), err)
		}
		select {
		case <-exitc:
		case <-time.After(grace):
			if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
				return fmt.Errorf("kill %s: %w", c.ID(), err)
			}
			select {
			case <-exitc:
			case <-time.After(10 * time.Second):
				return fmt.Errorf("container %s did not die after SIGKILL", c.ID())
			}
		case <-ctx.Done():
			return ctx.Err()
		}
		st, err = task.Status(ctx)
		if err != nil {
			return err
		}
	}
	l, _ := c.Labels(ctx)
	return r.recordExit(ctx, c, task, &Exit{Code: int(st.ExitStatus), StartedAt: parseTime(l[LabelStartedAt]), FinishedAt: st.ExitTime})
}

// deleteContainer stops (with grace) and deletes one container and its snapshot.
func (r *Runtime) deleteContainer(ctx context.Context, id string, grace time.Duration) error {
	c, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		r.index.remove(id)
		return nil
	}
	if err != nil {
		return err
	}
	if err := r.stopTask(ctx, c, grace); err != nil {
		return err
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	r.index.remove(id)
	return nil
}

// StopContainer stops a container's process with the grace period, keeping
// the container (and so its exit status).
func (r *Runtime) StopContainer(ctx context.Context, id string, grace time.Duration) error {
	ctx = r.ns(ctx)
	c, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return r.stopTask(ctx, c, grace)
}

// RemoveContainer stops (with grace) and deletes a container.
func (r *Runtime) RemoveContainer(ctx context.Context, id string, grace time.Duration) error {
	return r.deleteContainer(r.ns(ctx), id, grace)
}
