// Package hollow runs kubemark-style fake nodes: each registers a Node with
// capacity and Ready conditions, renews its Lease in kube-node-lease, and
// "runs" the pods bound to it at once (Running and Ready with a fake pod
// IP, written through pods/status) and acknowledges their graceful
// deletion. Thousands of them share one client, one pod informer indexed
// by spec.nodeName and one status worker pool, so one process can load the
// control plane like a large cluster.
package hollow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
)

// Config of a set of hollow nodes.
type Config struct {
	Client kubernetes.Interface
	// Count nodes named NamePrefix + index (0..Count-1).
	Count      int
	NamePrefix string // default "hollow-"
	// LeaseInterval is how often each node renews its Lease (default 10 s);
	// renewals are spread evenly over the interval.
	LeaseInterval time.Duration
	// Capacity of each node (defaults 4 CPUs, 16 GiB, 110 pods).
	CPUs        int
	MemoryBytes int64
	MaxPods     int64
	// Workers write pod statuses and acknowledge deletions (default 64:
	// each is one API round trip, tens of milliseconds on a busy master).
	Workers int
	Log     *slog.Logger
}

func (c *Config) defaults() error {
	if c.Client == nil {
		return errors.New("hollow: a client is required")
	}
	if c.Count <= 0 {
		return fmt.Errorf("hollow: count %d: need at least one node", c.Count)
	}
	if c.NamePrefix == "" {
		c.NamePrefix = "hollow-"
	}
	if c.LeaseInterval <= 0 {
		c.LeaseInterval = 10 * time.Second
	}
	if c.CPUs <= 0 {
		c.CPUs = 4
	}
	if c.MemoryBytes <= 0 {
		c.MemoryBytes = 16 << 30
	}
	if c.MaxPods <= 0 {
		c.MaxPods = 110
	}
	if c.Workers <= 0 {
		c.Workers = 64
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return nil
}

// Nodes is a running set of hollow nodes.
type Nodes struct {
	cfg     Config
	runtime *fakeRuntime
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu    sync.Mutex
	nodes map[string]*node
}

// Start registers the nodes (each with a first Lease and status) and
// starts their heartbeats and the fake runtime; it returns once every node
// is registered and the pod cache has synced. Stop (or ctx) ends them.
func Start(ctx context.Context, cfg Config) (*Nodes, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	n := &Nodes{cfg: cfg, cancel: cancel, nodes: map[string]*node{}}
	for i := range cfg.Count {
		nd, err := newNode(ctx, &n.cfg, i)
		if err != nil {
			cancel()
			return nil, err
		}
		n.nodes[nd.name] = nd
	}
	n.runtime = newRuntime(&n.cfg, n.alive)
	if err := n.register(ctx); err != nil {
		cancel()
		return nil, err
	}
	if err := n.runtime.start(ctx, &n.wg); err != nil {
		cancel()
		n.wg.Wait()
		return nil, err
	}
	i := 0
	for _, name := range n.Names() {
		nd := n.nodes[name]
		offset := time.Duration(i) * cfg.LeaseInterval / time.Duration(cfg.Count)
		i++
		n.wg.Add(1)
		go func() { defer n.wg.Done(); nd.heartbeat(offset) }()
	}
	return n, nil
}

// register registers every node with bounded parallelism, retrying
// failures until ctx ends.
func (n *Nodes) register(ctx context.Context) error {
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for _, nd := range n.nodes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			nd.registerUntilDone()
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("hollow: registering %d nodes: %w", len(n.nodes), ctx.Err())
	}
	return nil
}

// Run starts the nodes and keeps them alive until ctx ends (the
// `hoist hollow-node` command).
func Run(ctx context.Context, cfg Config) error {
	n, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	n.cfg.Log.Info("hollow nodes running", "count", n.cfg.Count, "prefix", n.cfg.NamePrefix, "leaseInterval", n.cfg.LeaseInterval)
	<-ctx.Done()
	n.Stop()
	return nil
}

// Names lists the nodes, sorted.
func (n *Nodes) Names() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.nodes))
	for name := range n.nodes {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// StopHeartbeat makes one node die: its Lease and status stop being
// renewed and its pods are no longer run or acknowledged, like a machine
// that lost power.
func (n *Nodes) StopHeartbeat(name string) error {
	n.mu.Lock()
	nd, ok := n.nodes[name]
	n.mu.Unlock()
	if !ok {
		return fmt.Errorf("hollow: no node %q", name)
	}
	nd.stop()
	return nil
}

// alive reports whether name is one of these nodes and still running.
func (n *Nodes) alive(name string) (*node, bool) {
	n.mu.Lock()
	nd, ok := n.nodes[name]
	n.mu.Unlock()
	if !ok || nd.stopped() {
		return nil, false
	}
	return nd, true
}

// Stop ends every node (their API objects stay) and waits.
func (n *Nodes) Stop() {
	n.cancel()
	n.wg.Wait()
}
