// Package fabric builds a network of node namespaces on one machine, the
// substrate of hoist's multi-node tests and `hoist cluster`: a bridge in its
// own fabric namespace, one namespace per node whose eth0 is a veth into that
// bridge, and one veth from the root namespace into the bridge so that a
// master and kubectl running in the root namespace reach the nodes.
//
// Nothing is ever routed out through the machine's real interfaces: node
// namespaces have no default route, the root namespace only gains one
// connected route for the fabric subnet, and no iptables rule is written.
// Every kernel object carries a hoist-owned name (netns "hoist-<name>-…",
// root link "hst<name>") and is listed in a state file, so Sweep can remove
// the leftovers of a crashed run.
package fabric

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"

	"github.com/hoist-project/hoist/internal/fabric/record"
	"github.com/hoist-project/hoist/internal/nsutil"
)

const (
	// NetnsPrefix starts the name of every network namespace hoist creates.
	NetnsPrefix = "hoist-"
	// LinkPrefix starts the name of every link hoist creates in the root namespace.
	LinkPrefix = "hst"
	// DefaultStateDir holds one state file per fabric.
	DefaultStateDir = record.BaseDir + "/fabrics"
	// DefaultMTU is the MTU of every fabric link unless Config.MTU says otherwise.
	DefaultMTU = 1500

	bridgeName   = "br0"  // inside the fabric namespace
	hostPeerName = "host" // the root link's peer, inside the fabric namespace
	nodeIfName   = "eth0" // inside each node namespace
)

// validName keeps every derived interface name within 15 bytes ("hst" + name).
var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,9}$`)

// Config describes a fabric. Zero values pick defaults.
type Config struct {
	Name     string       // 1-10 chars of [a-z0-9-]; all object names derive from it
	Nodes    int          // number of node namespaces (at least 1)
	Subnet   netip.Prefix // IPv4; zero: the first 172.31.<k>.0/24 no root route or other fabric uses
	MTU      int          // default DefaultMTU
	StateDir string       // default DefaultStateDir
}

// Node is one node namespace on the fabric.
type Node struct {
	Name      string     `json:"name"`      // "n0", "n1", ...
	Netns     string     `json:"netns"`     // named netns, "hoist-<fabric>-n0"
	NetnsPath string     `json:"netnsPath"` // its bind mount, for nsutil.Do and CNI
	IP        netip.Addr `json:"ip"`        // address of eth0
}

// State is what a fabric consists of; it is written before the objects are
// created so that a crash half-way still leaves a complete list for Sweep.
type State struct {
	Owner       record.Owner `json:"owner"`
	Name        string       `json:"name"`
	Subnet      netip.Prefix `json:"subnet"`
	MTU         int          `json:"mtu"`
	HostIP      netip.Addr   `json:"hostIP"`
	HostLink    string       `json:"hostLink"`
	FabricNetns string       `json:"fabricNetns"`
	Nodes       []Node       `json:"nodes"`
}

// Fabric is a created fabric.
type Fabric struct {
	state     State
	statePath string
}

// Create builds the fabric described by cfg. On failure nothing is left behind.
func Create(ctx context.Context, cfg Config) (f *Fabric, err error) {
	if !validName.MatchString(cfg.Name) {
		return nil, fmt.Errorf("fabric name %q: want 1-10 characters of a-z, 0-9 and '-' (it becomes part of interface names)", cfg.Name)
	}
	if cfg.Nodes < 1 {
		return nil, fmt.Errorf("fabric %s: need at least one node, got %d", cfg.Name, cfg.Nodes)
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.MTU < 576 || cfg.MTU > 65535 {
		return nil, fmt.Errorf("fabric %s: MTU %d out of range 576-65535", cfg.Name, cfg.MTU)
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir
	}
	owner, err := record.Self()
	if err != nil {
		return nil, err
	}
	// One creator at a time: subnet choice must see every other fabric.
	unlock, err := record.Lock(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	f = &Fabric{statePath: filepath.Join(cfg.StateDir, cfg.Name+".json")}
	if _, err := os.Stat(f.statePath); err == nil {
		return nil, fmt.Errorf("fabric %s already exists (state %s): remove it with `hoist cluster down --all` or pick another name", cfg.Name, f.statePath)
	}
	used, err := usedPrefixes(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	subnet, err := chooseSubnet(cfg.Subnet, cfg.Nodes, used)
	if err != nil {
		return nil, fmt.Errorf("fabric %s: %w", cfg.Name, err)
	}
	f.state = plan(cfg, subnet, owner)
	for _, ns := range f.netnsNames() {
		if _, err := os.Stat(nsutil.Path(ns)); err == nil {
			return nil, fmt.Errorf("fabric %s: network namespace %s already exists: remove it with `hoist cluster down --all`", cfg.Name, ns)
		}
	}
	if err := record.Write(f.statePath, f.state); err != nil {
		return nil, fmt.Errorf("write fabric state: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, f.Destroy())
			f = nil
		}
	}()
	if err := ctx.Err(); err != nil {
		return f, err
	}
	if err := build(f.state); err != nil {
		return f, fmt.Errorf("fabric %s: %w", cfg.Name, err)
	}
	return f, nil
}

// Open returns the fabric recorded under stateDir (default DefaultStateDir) by
// name, e.g. one another process created, so it can be used or destroyed.
func Open(stateDir, name string) (*Fabric, error) {
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("fabric name %q: want 1-10 characters of a-z, 0-9 and '-'", name)
	}
	f := &Fabric{statePath: filepath.Join(stateDir, name+".json")}
	if err := record.Read(f.statePath, &f.state); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no fabric %s: %s does not exist", name, f.statePath)
		}
		return nil, err
	}
	return f, nil
}

// plan derives every name and address of the fabric from cfg.
func plan(cfg Config, subnet netip.Prefix, owner record.Owner) State {
	st := State{
		Owner:       owner,
		Name:        cfg.Name,
		Subnet:      subnet,
		MTU:         cfg.MTU,
		HostIP:      subnet.Addr().Next(),
		HostLink:    LinkPrefix + cfg.Name,
		FabricNetns: NetnsPrefix + cfg.Name + "-fabric",
	}
	ip := st.HostIP
	for k := 0; k < cfg.Nodes; k++ {
		ip = ip.Next()
		ns := fmt.Sprintf("%s%s-n%d", NetnsPrefix, cfg.Name, k)
		st.Nodes = append(st.Nodes, Node{Name: fmt.Sprintf("n%d", k), Netns: ns, NetnsPath: nsutil.Path(ns), IP: ip})
	}
	return st
}

func (f *Fabric) netnsNames() []string {
	names := []string{f.state.FabricNetns}
	for _, n := range f.state.Nodes {
		names = append(names, n.Netns)
	}
	return names
}

// Name returns the fabric's name.
func (f *Fabric) Name() string { return f.state.Name }

// Nodes returns the node namespaces in order.
func (f *Fabric) Nodes() []Node { return append([]Node(nil), f.state.Nodes...) }

// HostIP is the root namespace's address on the fabric.
func (f *Fabric) HostIP() netip.Addr { return f.state.HostIP }

// Subnet is the fabric's IPv4 subnet.
func (f *Fabric) Subnet() netip.Prefix { return f.state.Subnet }

// MTU is the MTU of every fabric link.
func (f *Fabric) MTU() int { return f.state.MTU }

// State returns the full description of the fabric (as written to its state file).
func (f *Fabric) State() State { return f.state }

// Command returns a command that runs argv inside node's network namespace
// (via `ip netns exec`, which also shows the namespace's own /sys).
func (f *Fabric) Command(ctx context.Context, node Node, argv ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", node.Netns}, argv...)...)
}

// Exec runs argv inside node's network namespace and returns its combined output.
func (f *Fabric) Exec(ctx context.Context, node Node, argv ...string) ([]byte, error) {
	out, err := f.Command(ctx, node, argv...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%v in %s: %w: %s", argv, node.Netns, err, out)
	}
	return out, nil
}

// Do runs fn on a thread inside node's network namespace; sockets fn opens stay there.
func (f *Fabric) Do(node Node, fn func() error) error { return nsutil.Do(node.NetnsPath, fn) }

// Destroy removes every object of the fabric and its state file. It is safe
// to call more than once and removes whatever part exists.
func (f *Fabric) Destroy() error {
	if err := teardown(f.state); err != nil {
		return fmt.Errorf("destroy fabric %s: %w", f.state.Name, err)
	}
	return record.Remove(f.statePath)
}
