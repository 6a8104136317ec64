// Package proxy is the service proxy: Services and EndpointSlices from
// client-go informers feed a change tracker (proxy/changes); a rate-limited
// loop syncs a data path from complete snapshots: iptables (proxy/iptables)
// or eBPF (proxy/ebpf).
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/proxy/changes"
	"github.com/hoist-project/hoist/proxy/conntrack"
	"github.com/hoist-project/hoist/proxy/ebpf"
	"github.com/hoist-project/hoist/proxy/healthcheck"
	"github.com/hoist-project/hoist/proxy/iptables"
)

// Modes.
const (
	ModeIPTables = "iptables"
	ModeEBPF     = "ebpf"
)

// Defaults.
const (
	DefaultHealthzAddress  = "0.0.0.0:10256"
	DefaultMetricsAddress  = "127.0.0.1:10249"
	DefaultMinSyncInterval = time.Second
	DefaultSyncPeriod      = 30 * time.Second
	DefaultFullSyncPeriod  = time.Hour
)

// Config configures the proxy on one node.
type Config struct {
	Kubeconfig         string // "" uses the in-cluster config
	Mode               string // ModeIPTables or ModeEBPF
	NodeName           string
	ClusterCIDR        netip.Prefix // zero: do not masquerade off-cluster traffic to cluster IPs
	NodePortAddresses  []netip.Addr // empty: all local addresses
	LocalhostNodePorts bool
	HealthzAddress     string // "" disables
	MetricsAddress     string // "" disables
	MinSyncInterval    time.Duration
	SyncPeriod         time.Duration // periodic sync (also conntrack) without changes
	FullSyncPeriod     time.Duration // periodic full rewrite, repairing foreign edits
	Log                *slog.Logger

	// eBPF mode.
	BPFFSDir           string   // bpffs directory for pinned maps and links; default ebpf.DefaultPinDir
	CgroupPath         string   // cgroup v2 directory the socket programs attach to; default the cgroup v2 root
	NodePortInterfaces []string // interfaces with the tc NodePort programs; nil: all non-loopback with IPv4

	// NetnsPath programs the data path inside this network namespace
	// (tests): iptables rules, conntrack and eBPF tc links. The eBPF socket
	// programs follow CgroupPath instead.
	NetnsPath string
}

func (c *Config) defaults() {
	if c.MinSyncInterval <= 0 {
		c.MinSyncInterval = DefaultMinSyncInterval
	}
	if c.SyncPeriod <= 0 {
		c.SyncPeriod = DefaultSyncPeriod
	}
	if c.FullSyncPeriod <= 0 {
		c.FullSyncPeriod = DefaultFullSyncPeriod
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Run runs the proxy until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	switch cfg.Mode {
	case ModeIPTables, ModeEBPF:
	default:
		return fmt.Errorf("proxy: unknown mode %q (use %s or %s)", cfg.Mode, ModeIPTables, ModeEBPF)
	}
	if cfg.NodeName == "" {
		return errors.New("proxy: node name is required (it selects the local endpoints)")
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return fmt.Errorf("proxy: kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("proxy: client: %w", err)
	}
	metrics := healthcheck.NewMetrics()
	dp, err := newDataPath(ctx, cfg, metrics)
	if err != nil {
		return err
	}
	if c, ok := dp.(io.Closer); ok {
		defer c.Close() // eBPF: handles only; the pinned programs keep working
	}
	ct, err := conntrack.New(cfg.NetnsPath)
	if err != nil {
		return err
	}
	defer ct.Close()
	nodePorts := healthcheck.NewNodePortServers()
	defer nodePorts.Close()
	return run(ctx, cfg, client, &Syncer{DataPath: dp, Conntrack: ct, NodePorts: nodePorts, Metrics: metrics, Log: cfg.Log})
}

func newDataPath(ctx context.Context, cfg Config, metrics *healthcheck.Metrics) (DataPath, error) {
	if cfg.Mode == ModeEBPF {
		return ebpf.NewProxier(ebpf.Config{
			PinDir: cfg.BPFFSDir, Cgroup: cfg.CgroupPath, Interfaces: cfg.NodePortInterfaces,
			NodePortAddresses: cfg.NodePortAddresses, LocalhostNodePorts: cfg.LocalhostNodePorts, NetnsPath: cfg.NetnsPath,
		}, metrics)
	}
	return iptables.NewProxier(ctx, iptables.Config{
		ClusterCIDR: cfg.ClusterCIDR, NodePortAddresses: cfg.NodePortAddresses, LocalhostNodePorts: cfg.LocalhostNodePorts,
	}, iptables.ExecRunner{NetnsPath: cfg.NetnsPath}, metrics)
}

// run wires informers of client to a tracker and runs the sync loop of s
// (whose Tracker and Health it sets) once the caches are filled.
func run(ctx context.Context, cfg Config, client kubernetes.Interface, s *Syncer) error {
	cfg.defaults()
	if s.Metrics == nil {
		s.Metrics = healthcheck.NewMetrics()
	}
	health := healthcheck.NewHealth(2*cfg.SyncPeriod, nil)
	wake := make(chan struct{}, 1)
	tracker := changes.NewTracker(cfg.NodeName, func() {
		health.Queued()
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	s.Tracker, s.Health = tracker, health
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	serveErr := make(chan error, 1)
	go func() { serveErr <- healthcheck.Serve(ctx, cfg.HealthzAddress, cfg.MetricsAddress, health, s.Metrics) }()

	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = "!service.kubernetes.io/service-proxy-name"
	}))
	svcInf := factory.Core().V1().Services().Informer()
	sliceInf := factory.Discovery().V1().EndpointSlices().Informer()
	if _, err := svcInf.AddEventHandler(handlers(tracker.SetService, tracker.DeleteService)); err != nil {
		return err
	}
	if _, err := sliceInf.AddEventHandler(handlers(tracker.SetSlice, tracker.DeleteSlice)); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	cfg.Log.Info("proxy waiting for the service and endpointslice caches", "mode", cfg.Mode, "node", cfg.NodeName)
	if !cache.WaitForCacheSync(ctx.Done(), svcInf.HasSynced, sliceInf.HasSynced) {
		select {
		case err := <-serveErr:
			return err
		default:
		}
		return nil
	}
	cfg.Log.Info("proxy caches synced; programming rules")
	done := make(chan struct{})
	go func() {
		loop(ctx, s, wake, cfg.MinSyncInterval, cfg.SyncPeriod, cfg.FullSyncPeriod, cfg.Log)
		close(done)
	}()
	defer func() { cancel(); <-done }()
	select {
	case <-ctx.Done():
		return nil
	case err := <-serveErr:
		return err
	}
}

// handlers adapts typed set/delete functions to informer callbacks,
// unwrapping tombstones of deletions the watch missed.
func handlers[T *v1.Service | *discovery.EndpointSlice](set, del func(T)) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { set(o.(T)) },
		UpdateFunc: func(_, o any) { set(o.(T)) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if obj, ok := o.(T); ok {
				del(obj)
			}
		},
	}
}
