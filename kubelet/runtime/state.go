package runtime

import (
	"net"
	"sort"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Labels on every containerd container the kubelet creates: they are the
// kubelet's memory across restarts (nothing else is needed to rebuild state).
const (
	LabelPodUID        = "io.hoist.pod.uid"
	LabelPodName       = "io.hoist.pod.name"
	LabelPodNamespace  = "io.hoist.pod.namespace"
	LabelContainerName = "io.hoist.container.name"
	LabelKind          = "io.hoist.container.kind" // sandbox, init or app
	LabelRestart       = "io.hoist.container.restart"
	LabelHash          = "io.hoist.container.hash"
	LabelGrace         = "io.hoist.pod.grace-seconds"
	LabelSandboxID     = "io.hoist.sandbox.id"
	LabelNetNS         = "io.hoist.sandbox.netns"
	LabelPodIP         = "io.hoist.sandbox.ip"
	LabelStartedAt     = "io.hoist.started-at"
	LabelFinishedAt    = "io.hoist.finished-at"
	LabelExitCode      = "io.hoist.exit-code"
	LabelLastExitCode  = "io.hoist.last.exit-code"
	LabelLastStarted   = "io.hoist.last.started-at"
	LabelLastFinished  = "io.hoist.last.finished-at"
	LabelTermPolicy    = "io.hoist.termination-message-policy"
	// shimGroupAnnotation makes all containers of a pod share one runc
	// shim: the runc v2 shim reads it from the OCI spec's annotations (not
	// from the container labels) and serves every container with the same
	// value from one process, as containerd's CRI does per sandbox.
	shimGroupAnnotation = "io.containerd.runc.v2.group"
)

// Kind is the role of a container in a pod.
type Kind string

const (
	KindSandbox Kind = "sandbox"
	KindInit    Kind = "init"
	KindApp     Kind = "app"
)

// State of a container's process.
type State string

const (
	StateCreated State = "created" // container exists, task never started
	StateRunning State = "running"
	StateExited  State = "exited"
)

// Exit is one finished run of a container.
type Exit struct {
	Code       int
	StartedAt  time.Time
	FinishedAt time.Time
	Message    string // termination message (filled in by List)
}

// Container is what the runtime knows of one container.
type Container struct {
	ID        string
	Name      string
	Kind      Kind
	SandboxID string
	Restart   int
	Hash      string
	Image     string
	ImageID   string
	State     State
	Pid       uint32
	StartedAt time.Time
	Exit      *Exit // set when State is StateExited
	Last      *Exit // the previous run (from the container this one replaced)
	CreatedAt time.Time
}

// Sandbox is one pod sandbox: pause container, netns and CNI attachment.
type Sandbox struct {
	ID        string
	NetNS     string // path
	IP        net.IP
	Running   bool
	Pid       uint32
	CreatedAt time.Time
	Orphan    bool // only a checkpoint left (the kubelet died while creating it)
}

// Pod groups a pod's sandboxes and containers as found in containerd.
type Pod struct {
	UID        types.UID
	Name       string
	Namespace  string
	Grace      time.Duration // terminationGracePeriodSeconds when the pod was started
	Sandboxes  []*Sandbox
	Containers []*Container
}

// LiveSandbox returns the newest running sandbox, or nil.
func (p *Pod) LiveSandbox() *Sandbox {
	var best *Sandbox
	for _, s := range p.Sandboxes {
		if s.Running && (best == nil || s.CreatedAt.After(best.CreatedAt)) {
			best = s
		}
	}
	return best
}

// Latest returns the newest container named name in sandbox sandboxID, or nil.
func (p *Pod) Latest(sandboxID, name string) *Container {
	var best *Container
	for _, c := range p.Containers {
		if c.Name != name || c.SandboxID != sandboxID {
			continue
		}
		if best == nil || c.Restart > best.Restart {
			best = c
		}
	}
	return best
}

func (p *Pod) sortContainers() {
	sort.Slice(p.Containers, func(i, j int) bool {
		a, b := p.Containers[i], p.Containers[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Restart < b.Restart
	})
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// exitFromLabels rebuilds an Exit recorded in labels under the given keys.
func exitFromLabels(l map[string]string, code, started, finished string) *Exit {
	c, ok := l[code]
	if !ok {
		return nil
	}
	n, _ := strconv.Atoi(c)
	return &Exit{Code: n, StartedAt: parseTime(l[started]), FinishedAt: parseTime(l[finished])}
}
