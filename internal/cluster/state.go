package cluster

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"

	"github.com/hoist-project/hoist/internal/fabric/record"
)

// State is what a cluster consists of, kept in <data-dir>/cluster.json. It
// is rewritten before every object is created (fabric, process), so a
// crash at any point leaves a complete list for Down.
type State struct {
	DataDir           string      `json:"dataDir"`
	Fabric            string      `json:"fabric"`
	FabricStateDir    string      `json:"fabricStateDir"`
	HostIP            netip.Addr  `json:"hostIP,omitzero"`
	APIServer         string      `json:"apiServer,omitempty"`
	ContainerdAddress string      `json:"containerdAddress"`
	CNIBinDir         string      `json:"cniBinDir"`
	Nodes             []NodeState `json:"nodes,omitempty"`
	Processes         []Process   `json:"processes,omitempty"`
}

// NodeState is one node of the cluster.
type NodeState struct {
	Name                string     `json:"name"` // Kubernetes node name
	Netns               string     `json:"netns"`
	NetnsPath           string     `json:"netnsPath"`
	IP                  netip.Addr `json:"ip"`
	ContainerdNamespace string     `json:"containerdNamespace"`
	CgroupParent        string     `json:"cgroupParent"`
	// BPFPinDir and ProxyCgroup are the eBPF proxy's pin directory and the
	// cgroup v2 directory its socket programs attach to (--proxy-mode ebpf):
	// the node's own, so the programs act on its pods only.
	BPFPinDir   string   `json:"bpfPinDir"`
	ProxyCgroup string   `json:"proxyCgroup,omitempty"`
	Dirs        nodeDirs `json:"dirs"`
}

// Process is a detached process of the cluster.
type Process struct {
	Name  string   `json:"name"`           // e.g. "master", "node1-kubelet"
	Node  string   `json:"node,omitempty"` // "" for the root namespace
	PID   int      `json:"pid"`
	Start uint64   `json:"start"` // see record.Owner: tells a recycled pid apart
	Log   string   `json:"log"`
	Argv  []string `json:"argv"`
}

// Running reports whether the process is still the one that was started.
func (p Process) Running() bool { return record.Running(p.PID, p.Start) }

// Node returns the node called name.
func (s *State) Node(name string) (NodeState, error) {
	var names []string
	for _, n := range s.Nodes {
		if n.Name == name {
			return n, nil
		}
		names = append(names, n.Name)
	}
	return NodeState{}, fmt.Errorf("no node %q in the cluster under %s: its nodes are %v", name, s.DataDir, names)
}

// stateFile guards concurrent updates of the state from one process.
type stateFile struct {
	mu    sync.Mutex
	path  string
	state State
}

// update changes the state and writes it before returning.
func (f *stateFile) update(change func(*State)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(&f.state)
	if err := record.Write(f.path, f.state); err != nil {
		return fmt.Errorf("write cluster state: %w", err)
	}
	return nil
}

func (f *stateFile) snapshot() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

// Load reads the state of the cluster under dataDir; os.ErrNotExist (wrapped)
// means there is none.
func Load(dataDir string) (*State, error) {
	l := layout{dataDir}
	var st State
	if err := record.Read(l.statePath(), &st); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no cluster under %s: %w", dataDir, err)
		}
		return nil, err
	}
	return &st, nil
}
