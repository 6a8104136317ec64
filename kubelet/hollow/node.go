package hollow

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"github.com/hoist-project/hoist/internal/version"
	"github.com/hoist-project/hoist/kubelet/nodestatus"
)

// LabelHollow marks Nodes registered by this package.
const LabelHollow = "hoist.io/hollow"

// node is one hollow node: the real kubelet's node status manager over a
// fake machine, driven by its own heartbeat loop.
type node struct {
	name   string
	index  int
	ip     netip.Addr
	status *nodestatus.Manager
	lease  *leaseRenewer
	log    func(msg string, args ...any)
	every  time.Duration
	ctx    context.Context
	cancel context.CancelFunc
}

// fakeMachine reports the configured capacity and never any pressure.
type fakeMachine struct {
	cpus   int
	memory int64
	name   string
}

const fakeDisk = 100 << 30

func (m fakeMachine) Info() (nodestatus.MachineInfo, error) {
	return nodestatus.MachineInfo{
		CPUs: m.cpus, MemoryBytes: m.memory, DiskBytes: fakeDisk,
		KernelVersion: "hollow", OSImage: "hoist hollow node",
		OS: runtime.GOOS, Arch: runtime.GOARCH,
		MachineID: m.name, BootID: m.name,
	}, nil
}

func (m fakeMachine) Usage() (nodestatus.Usage, error) {
	return nodestatus.Usage{MemoryAvailable: m.memory, DiskAvailable: fakeDisk, PIDs: 100, PIDMax: 1 << 22}, nil
}

func newNode(ctx context.Context, cfg *Config, index int) (*node, error) {
	name := fmt.Sprintf("%s%d", cfg.NamePrefix, index)
	ip := nodeIP(index)
	status, err := nodestatus.New(nodestatus.Config{
		Client:         cfg.Client,
		NodeName:       name,
		NodeIP:         ip.String(),
		Labels:         map[string]string{LabelHollow: "true"},
		MaxPods:        cfg.MaxPods,
		KubeletVersion: version.Kubernetes,
		Machine:        fakeMachine{cpus: cfg.CPUs, memory: cfg.MemoryBytes, name: name},
		LeaseInterval:  cfg.LeaseInterval,
		Log:            cfg.Log,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	return &node{name: name, index: index, ip: ip, status: status, log: cfg.Log.Warn,
		lease: &leaseRenewer{client: cfg.Client, status: status},
		every: cfg.LeaseInterval, ctx: ctx, cancel: cancel}, nil
}

// nodeIP is a made-up InternalIP: 100.127.0.0/16 (carrier-grade NAT space,
// never routed here) holds 65,534 nodes.
func nodeIP(index int) netip.Addr {
	i := index + 1
	return netip.AddrFrom4([4]byte{100, 127, byte(i >> 8), byte(i)})
}

// registerUntilDone creates the Node, its first Lease and status, retrying
// every second until it succeeds or the node stops.
func (n *node) registerUntilDone() {
	for n.ctx.Err() == nil {
		err := n.status.Register(n.ctx)
		if err == nil {
			err = n.lease.renew(n.ctx, n.name)
		}
		if err == nil {
			err = n.status.SyncStatus(n.ctx)
		}
		if err == nil {
			return
		}
		n.log("hollow node registration failed; retrying", "node", n.name, "err", err)
		select {
		case <-n.ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// heartbeat renews the Lease (and rewrites the status when the status
// manager says so) every interval, first after offset so that a thousand
// nodes do not renew in the same instant.
func (n *node) heartbeat(offset time.Duration) {
	select {
	case <-n.ctx.Done():
		return
	case <-time.After(offset):
	}
	t := time.NewTicker(n.every)
	defer t.Stop()
	for {
		if err := n.lease.renew(n.ctx, n.name); err != nil && n.ctx.Err() == nil {
			n.log("hollow node lease not renewed", "node", n.name, "err", err)
		}
		if err := n.status.SyncStatus(n.ctx); err != nil && n.ctx.Err() == nil {
			n.log("hollow node status not written", "node", n.name, "err", err)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *node) stop()         { n.cancel() }
func (n *node) stopped() bool { return n.ctx.Err() != nil }
