package kubelet

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/hoist-project/hoist/internal/version"
	"github.com/hoist-project/hoist/kubelet/apisource"
	"github.com/hoist-project/hoist/kubelet/config"
	"github.com/hoist-project/hoist/kubelet/network"
	"github.com/hoist-project/hoist/kubelet/nodestatus"
	"github.com/hoist-project/hoist/kubelet/podworkers"
	"github.com/hoist-project/hoist/kubelet/status"
	"github.com/hoist-project/hoist/kubelet/statussync"
)

// apiSide holds the managers that talk to the API server. Its zero value
// (no client: static pods only) makes every hook a no-op.
type apiSide struct {
	log         *slog.Logger
	statics     map[types.UID]string // namespace/name of each static pod wanted now
	lastSweep   time.Time
	sweeping    atomic.Bool
	source      *apisource.Source
	writer      *statussync.Writer
	mirrors     *statussync.Mirrors
	events      record.EventRecorder
	broadcaster record.EventBroadcaster
}

// startAPI starts the node status manager and status writer when cfg has
// an API client; the pod source is run by the caller with the others.
func startAPI(ctx context.Context, cfg Config, log *slog.Logger, client *containerd.Client, netw *network.Manager) (*apiSide, error) {
	a := &apiSide{log: log, statics: map[types.UID]string{}}
	if cfg.Client == nil {
		return a, nil
	}
	node, err := nodestatus.New(nodestatus.Config{
		Client: cfg.Client, NodeName: cfg.NodeName, NodeIP: cfg.HostIP, Labels: cfg.NodeLabels, Taints: cfg.NodeTaints,
		MaxPods: cfg.MaxPods, KubeletVersion: version.Kubernetes, Machine: nodestatus.Host{RootDir: cfg.RootDir},
		RuntimeVersion: func(ctx context.Context) (string, error) {
			v, err := client.Version(ctx)
			return v.Version, err
		},
		NetworkReady: netw.Status, Log: log,
	})
	if err != nil {
		return nil, err
	}
	a.broadcaster = record.NewBroadcaster(record.WithContext(ctx))
	a.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cfg.Client.CoreV1().Events("")})
	a.events = a.broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: cfg.NodeName})
	a.source = &apisource.Source{Client: cfg.Client, NodeName: cfg.NodeName, Log: log}
	a.writer = &statussync.Writer{Client: cfg.Client, Log: log}
	a.mirrors = &statussync.Mirrors{Client: cfg.Client, NodeName: cfg.NodeName, OnCreate: func(p *v1.Pod) { a.writer.Resend(p.UID) }, Log: log}
	go node.Run(ctx)
	go a.writer.Run(ctx)
	log.Info("API side started", "node", cfg.NodeName)
	return a, nil
}

func (a *apiSide) stop() {
	if a.broadcaster != nil {
		a.broadcaster.Shutdown()
	}
}

// recorder returns the event recorder (nil without an API).
func (a *apiSide) recorder() record.EventRecorder { return a.events }

// sink combines the configured status sink with the API writer.
func (a *apiSide) sink(extra status.Sink) status.Sink {
	var sinks multiSink
	if extra != nil {
		sinks = append(sinks, extra)
	}
	if a.writer != nil {
		sinks = append(sinks, a.writer)
	}
	return sinks
}

type multiSink []status.Sink

func (m multiSink) PodStatusChanged(pod *v1.Pod, st v1.PodStatus) {
	for _, s := range m {
		s.PodStatusChanged(pod, st)
	}
}

// observe keeps track of the static pods the sources want (Run's loop only).
func (a *apiSide) observe(u config.PodUpdate) {
	if !statussync.IsStatic(u.Pod) {
		return
	}
	if u.Op == config.Remove {
		delete(a.statics, u.Pod.UID) // keyed by UID: an edit adds the new UID and removes the old
		return
	}
	a.statics[u.Pod.UID] = u.Pod.Namespace + "/" + u.Pod.Name
}

// sweepMirrors deletes mirror pods of static pods that no longer exist, at
// most once a minute, in the background (Run's loop only, once all sources
// have synced).
func (a *apiSide) sweepMirrors(ctx context.Context, now time.Time) {
	if a.mirrors == nil || now.Sub(a.lastSweep) < time.Minute || !a.sweeping.CompareAndSwap(false, true) {
		return
	}
	a.lastSweep = now
	want := make(map[string]bool, len(a.statics))
	for _, k := range a.statics {
		want[k] = true
	}
	go func() {
		defer a.sweeping.Store(false)
		if err := a.mirrors.Sweep(ctx, want); err != nil && ctx.Err() == nil {
			a.log.Warn("mirror pod sweep failed", "err", err)
		}
	}()
}

// afterSync reconciles the mirror pod of a static pod on every sync.
func (a *apiSide) afterSync(sync podworkers.SyncFunc) podworkers.SyncFunc {
	if a.mirrors == nil {
		return sync
	}
	return func(ctx context.Context, pod *v1.Pod) (time.Duration, error) {
		wait, err := sync(ctx, pod)
		if merr := a.mirrors.Ensure(ctx, pod); merr != nil && ctx.Err() == nil {
			a.log.Warn("mirror pod not reconciled", "pod", pod.Namespace+"/"+pod.Name, "err", merr)
		}
		return wait, err
	}
}

// afterKill completes graceful deletion of API pods and removes the mirror
// pod of a static pod once the pod's containers are gone.
func (a *apiSide) afterKill(kill podworkers.KillFunc) podworkers.KillFunc {
	if a.source == nil {
		return kill
	}
	return func(ctx context.Context, pod *v1.Pod) error {
		if err := kill(ctx, pod); err != nil {
			return err
		}
		a.writer.PodRemoved(pod.UID)
		if err := a.mirrors.Delete(ctx, pod); err != nil {
			return err
		}
		return a.source.Finalize(ctx, pod)
	}
}
