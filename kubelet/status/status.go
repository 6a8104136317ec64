// Package status computes pod status from what the runtime reports and keeps
// the latest status of every pod. Changes go to a Sink: today tests and logs,
// later the API server writer (only changed statuses are passed on).
package status

import (
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hoist-project/hoist/kubelet/runtime"
)

// Waiting explains why a container is not running (e.g. CrashLoopBackOff).
type Waiting struct {
	Reason  string
	Message string
}

// Input is everything a pod's status is computed from.
type Input struct {
	Pod     *v1.Pod
	Runtime *runtime.Pod // nil when nothing exists yet
	Waiting map[string]Waiting
	HostIP  string
	Now     time.Time
}

// Compute derives the pod's status. It is pure.
func Compute(in Input) v1.PodStatus {
	pod := in.Pod
	st := v1.PodStatus{HostIP: in.HostIP, QOSClass: runtime.QOSClass(pod)}
	if in.HostIP != "" {
		st.HostIPs = []v1.HostIP{{IP: in.HostIP}}
	}
	rp := in.Runtime
	if rp == nil {
		rp = &runtime.Pod{}
	}
	sb := rp.LiveSandbox()
	sbID := ""
	if sb != nil {
		sbID = sb.ID
		st.PodIP = sb.IP.String()
		st.PodIPs = []v1.PodIP{{IP: st.PodIP}}
		t := metav1.NewTime(sb.CreatedAt)
		st.StartTime = &t
	}
	initDone := true
	initFailed := false
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cs := containerStatus(c, rp.Latest(sbID, c.Name), in.Waiting[c.Name])
		if t := cs.State.Terminated; t == nil || t.ExitCode != 0 {
			initDone = false
			if t != nil && pod.Spec.RestartPolicy == v1.RestartPolicyNever {
				initFailed = true
			}
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
	}
	running, restarting, succeeded, failed, ready := 0, 0, 0, 0, 0
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cs := containerStatus(c, rp.Latest(sbID, c.Name), in.Waiting[c.Name])
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil:
			restarting++ // between runs (back-off): the pod is still Running
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			succeeded++
		case cs.State.Terminated != nil:
			failed++
		}
		if cs.Ready {
			ready++
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	n := len(pod.Spec.Containers)
	policy := pod.Spec.RestartPolicy
	switch {
	case initFailed:
		st.Phase = v1.PodFailed
	case !initDone || sb == nil && running+succeeded+failed == 0:
		st.Phase = v1.PodPending
	case running > 0 || restarting > 0:
		st.Phase = v1.PodRunning
	case succeeded+failed == n && policy != v1.RestartPolicyAlways:
		if failed > 0 && policy == v1.RestartPolicyNever {
			st.Phase = v1.PodFailed
		} else if failed == 0 {
			st.Phase = v1.PodSucceeded
		} else {
			st.Phase = v1.PodRunning // OnFailure: restarting
		}
	case succeeded+failed > 0:
		st.Phase = v1.PodRunning // restarting
	default:
		st.Phase = v1.PodPending
	}
	now := metav1.NewTime(in.Now)
	cond := func(t v1.PodConditionType, ok bool, reason string) v1.PodCondition {
		c := v1.PodCondition{Type: t, Status: v1.ConditionFalse, LastTransitionTime: now, Reason: reason}
		if ok {
			c.Status, c.Reason = v1.ConditionTrue, ""
		}
		return c
	}
	allReady := ready == n
	st.Conditions = []v1.PodCondition{
		cond(v1.PodReadyToStartContainers, sb != nil, ""),
		cond(v1.PodInitialized, initDone, "ContainersNotInitialized"),
		cond(v1.ContainersReady, allReady, "ContainersNotReady"),
		cond(v1.PodReady, allReady, "ContainersNotReady"),
		cond(v1.PodScheduled, true, ""),
	}
	return st
}

// containerStatus builds one container's status. Without probes (a later
// issue) a running container is ready.
func containerStatus(spec *v1.Container, c *runtime.Container, w Waiting) v1.ContainerStatus {
	cs := v1.ContainerStatus{Name: spec.Name, Image: spec.Image}
	if c == nil {
		reason := w.Reason
		if reason == "" {
			reason = "ContainerCreating"
		}
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: reason, Message: w.Message}
		return cs
	}
	cs.ContainerID = "containerd://" + c.ID
	cs.RestartCount = int32(c.Restart)
	cs.ImageID = c.Image
	if c.Last != nil {
		cs.LastTerminationState.Terminated = terminated(c.Last, "")
	}
	switch {
	case w.Reason != "":
		// Back-off between runs: the exit is history, the container waits.
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: w.Reason, Message: w.Message}
		if c.Exit != nil {
			cs.LastTerminationState.Terminated = terminated(c.Exit, fmt.Sprintf("containerd://%s", c.ID))
		}
	case c.State == runtime.StateRunning:
		cs.State.Running = &v1.ContainerStateRunning{StartedAt: metav1.NewTime(c.StartedAt)}
		started := true
		cs.Started = &started
		cs.Ready = true
	case c.State == runtime.StateExited:
		cs.State.Terminated = terminated(c.Exit, "containerd://"+c.ID)
	default:
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: "ContainerCreating"}
	}
	return cs
}

func terminated(e *runtime.Exit, id string) *v1.ContainerStateTerminated {
	reason := "Completed"
	if e.Code != 0 {
		reason = "Error"
	}
	return &v1.ContainerStateTerminated{
		ExitCode: int32(e.Code), Reason: reason, ContainerID: id, Message: e.Message,
		StartedAt: metav1.NewTime(e.StartedAt), FinishedAt: metav1.NewTime(e.FinishedAt),
	}
}

// Sink receives a pod's status when it changed.
type Sink interface {
	PodStatusChanged(pod *v1.Pod, status v1.PodStatus)
}

// Manager keeps the latest status per pod and passes changes to its sink.
type Manager struct {
	mu       sync.Mutex
	statuses map[types.UID]v1.PodStatus
	sink     Sink
}

// NewManager returns a manager; sink may be nil.
func NewManager(sink Sink) *Manager {
	return &Manager{statuses: map[types.UID]v1.PodStatus{}, sink: sink}
}

// Set records a status; transition times of unchanged conditions are kept,
// and the sink hears only about real changes.
func (m *Manager) Set(pod *v1.Pod, st v1.PodStatus) {
	m.mu.Lock()
	old, had := m.statuses[pod.UID]
	if had {
		for i := range st.Conditions {
			for _, oc := range old.Conditions {
				if oc.Type == st.Conditions[i].Type && oc.Status == st.Conditions[i].Status {
					st.Conditions[i].LastTransitionTime = oc.LastTransitionTime
				}
			}
		}
		if old.StartTime != nil {
			st.StartTime = old.StartTime
		}
	}
	changed := !had || !apiequality.Semantic.DeepEqual(old, st)
	m.statuses[pod.UID] = st
	m.mu.Unlock()
	if changed && m.sink != nil {
		m.sink.PodStatusChanged(pod, st)
	}
}

// Get returns the latest status of a pod.
func (m *Manager) Get(uid types.UID) (v1.PodStatus, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.statuses[uid]
	return st, ok
}

// Forget drops a removed pod.
func (m *Manager) Forget(uid types.UID) {
	m.mu.Lock()
	delete(m.statuses, uid)
	m.mu.Unlock()
}
