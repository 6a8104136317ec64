package probes

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
)

// Runner runs one probe attempt (Prober in production, a fake in tests).
type Runner interface {
	Run(ctx context.Context, t Target, probe *v1.Probe) (ok bool, msg string)
}

// Running describes one running container of a pod, as the syncer sees it.
type Running struct {
	Container *v1.Container
	ID        string // containerd container ID
	StartedAt time.Time
}

// Manager runs the probes of every running container.
type Manager struct {
	Runner   Runner
	Clock    clock.Clock          // nil: real clock
	OnChange func(uid types.UID)  // Ready, Started or Kill changed: resync the pod
	Events   record.EventRecorder // optional
	Log      *slog.Logger         // nil: slog.Default()
	Seeds    SeedStore            // optional: survives kubelet restarts

	mu      sync.Mutex
	workers map[string]*worker // container ID
}

type worker struct {
	pod    *v1.Pod
	target Target
	stop   context.CancelFunc
	mu     sync.Mutex
	set    *Set
}

func (m *Manager) clock() clock.Clock {
	if m.Clock == nil {
		return clock.RealClock{}
	}
	return m.Clock
}

func (m *Manager) log() *slog.Logger {
	if m.Log == nil {
		return slog.Default()
	}
	return m.Log
}

// Sync starts workers for the pod's running containers that have probes
// and stops those of containers no longer running.
func (m *Manager) Sync(ctx context.Context, pod *v1.Pod, podIP string, running []Running) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.workers == nil {
		m.workers = map[string]*worker{}
	}
	keep := map[string]bool{}
	for _, r := range running {
		keep[r.ID] = true
		if w := m.workers[r.ID]; w != nil {
			w.mu.Lock()
			w.pod = pod
			w.mu.Unlock()
			continue
		}
		seed, ok := seedFrom(pod, r)
		if !ok && m.Seeds != nil {
			seed, _ = m.Seeds.Load(r.ID)
		}
		set := NewSet(r.Container, r.StartedAt, seed)
		if set.Empty() {
			continue
		}
		wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		w := &worker{pod: pod, target: Target{PodIP: podIP, ContainerID: r.ID, Container: r.Container}, stop: cancel, set: set}
		m.workers[r.ID] = w
		go m.run(wctx, w)
	}
	for id, w := range m.workers {
		if w.pod.UID == pod.UID && !keep[id] {
			m.drop(id, w)
		}
	}
}

// seedFrom reads the container's readiness from the last status written to
// the API (for this very container run only).
func seedFrom(pod *v1.Pod, r Running) (Seed, bool) {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == r.Container.Name && strings.TrimPrefix(cs.ContainerID, "containerd://") == r.ID {
			return Seed{Ready: cs.Ready, Started: cs.Started != nil && *cs.Started}, true
		}
	}
	return Seed{}, false
}

// drop stops a worker and forgets its seed (the container is gone).
func (m *Manager) drop(id string, w *worker) {
	w.stop()
	delete(m.workers, id)
	if m.Seeds != nil {
		if err := m.Seeds.Delete(id); err != nil {
			m.log().Warn("probe seed not removed", "container", id, "err", err)
		}
	}
}

// Forget stops every worker of a pod.
func (m *Manager) Forget(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, w := range m.workers {
		if w.pod.UID == uid {
			m.drop(id, w)
		}
	}
}

// State returns a container's probe state; ok is false for containers
// without probes (their readiness is their running state).
func (m *Manager) State(containerID string) (ready, started bool, kill string, ok bool) {
	m.mu.Lock()
	w := m.workers[containerID]
	m.mu.Unlock()
	if w == nil {
		return false, false, "", false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.set.Ready(), w.set.Started(), w.set.Kill(), true
}

// run drives one container's Set with the clock until stopped or until a
// restart was asked for.
func (m *Manager) run(ctx context.Context, w *worker) {
	clk := m.clock()
	for {
		w.mu.Lock()
		next := w.set.Next()
		w.mu.Unlock()
		if next.IsZero() {
			return // nothing more to probe (restart asked for)
		}
		if d := next.Sub(clk.Now()); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-clk.After(d):
			}
		}
		now := clk.Now()
		w.mu.Lock()
		due := w.set.Due(now)
		w.mu.Unlock()
		for _, k := range due {
			w.mu.Lock()
			probe, pod := w.set.Probe(k), w.pod
			w.mu.Unlock()
			ok, msg := m.Runner.Run(ctx, w.target, probe)
			if ctx.Err() != nil {
				return
			}
			w.mu.Lock()
			changed := w.set.Observe(k, clk.Now(), ok, msg)
			kill, seed := w.set.Kill(), Seed{Ready: w.set.Ready(), Started: w.set.Started()}
			w.mu.Unlock()
			if changed && m.Seeds != nil {
				if err := m.Seeds.Save(w.target.ContainerID, seed); err != nil {
					m.log().Warn("probe seed not saved", "container", w.target.ContainerID, "err", err)
				}
			}
			if !ok {
				m.event(pod, v1.EventTypeWarning, "Unhealthy", "%s probe failed: %s", k, msg)
			}
			if changed {
				if kill != "" {
					m.log().Info("container failed its probe; restarting", "pod", pod.Namespace+"/"+pod.Name, "container", w.target.Container.Name, "reason", kill)
					m.event(pod, v1.EventTypeNormal, "Killing", "Container %s %s, will be restarted", w.target.Container.Name, kill)
				}
				if m.OnChange != nil {
					m.OnChange(pod.UID)
				}
			}
		}
	}
}

func (m *Manager) event(pod *v1.Pod, typ, reason, format string, args ...any) {
	if m.Events != nil {
		m.Events.Eventf(pod, typ, reason, format, args...)
	}
}

// Apply overlays probe results on a computed pod status: container ready
// and started, and the ContainersReady and Ready conditions.
func (m *Manager) Apply(st *v1.PodStatus) {
	allReady := true
	for i := range st.ContainerStatuses {
		cs := &st.ContainerStatuses[i]
		if cs.State.Running != nil {
			if ready, started, _, ok := m.State(strings.TrimPrefix(cs.ContainerID, "containerd://")); ok {
				cs.Ready = ready
				cs.Started = &started
			}
		}
		allReady = allReady && cs.Ready
	}
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type != v1.ContainersReady && c.Type != v1.PodReady {
			continue
		}
		if allReady {
			c.Status, c.Reason = v1.ConditionTrue, ""
		} else {
			c.Status, c.Reason = v1.ConditionFalse, "ContainersNotReady"
		}
	}
}
