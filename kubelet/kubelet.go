// Package kubelet is hoist's node agent. Run only wires small managers
// together — pod sources (config), pod workers, the pod syncer, runtime
// (containerd), network (CNI), volumes and status — and owns none of their
// logic. With an API client it also runs the API pod source, node
// registration and lease, the pod status writer and mirror pods (api.go).
package kubelet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd"
	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/typeurl/v2"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"

	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/kubelet/backoff"
	"github.com/hoist-project/hoist/kubelet/config"
	"github.com/hoist-project/hoist/kubelet/images"
	"github.com/hoist-project/hoist/kubelet/lifecycle"
	"github.com/hoist-project/hoist/kubelet/network"
	"github.com/hoist-project/hoist/kubelet/podsync"
	"github.com/hoist-project/hoist/kubelet/podworkers"
	"github.com/hoist-project/hoist/kubelet/probes"
	"github.com/hoist-project/hoist/kubelet/runtime"
	"github.com/hoist-project/hoist/kubelet/runtime/crilog"
	"github.com/hoist-project/hoist/kubelet/startslots"
	"github.com/hoist-project/hoist/kubelet/status"
	"github.com/hoist-project/hoist/kubelet/volumes"
	airgap "github.com/hoist-project/hoist/packaging/images"
)

// DefaultParallelPodStarts is how many pods start at once (sandbox
// creation, container start) when Config.ParallelPodStarts is 0.
const DefaultParallelPodStarts = 4

// Config of a kubelet. Zero values take the documented defaults.
type Config struct {
	NodeName            string   // default: the host name
	RootDir             string   // default /var/lib/hoist/kubelet
	ManifestDir         string   // static pods; "" disables the source
	ContainerdAddress   string   // default /run/containerd/containerd.sock
	ContainerdNamespace string   // default k8s.hoist
	CNIConfDir          string   // default /etc/cni/net.d
	CNIBinDirs          []string // default [/opt/cni/bin]
	CNIHostNetNS        string   // run CNI plugins in this netns (nodes as netns, tests); "" = own
	ImageDir            string   // air-gap image archives imported at start; "" disables
	LogRoot             string   // default /var/log/pods
	PauseImage          string   // default images.PauseImage
	CgroupParent        string   // default kubepods
	LogDriver           string   // default: hoist-log-driver beside this executable, else this executable
	HostIP              string   // default: the first global IPv4 address
	ResolvConf          string   // copied into pods as /etc/resolv.conf, default /etc/resolv.conf; "-": none
	Backoff             backoff.Policy
	Resync              time.Duration // periodic sync of every pod, default 10 s
	Housekeeping        time.Duration // orphan scan, default 2 s
	ManifestInterval    time.Duration // static dir poll, default 1 s
	StatusSink          status.Sink   // optional
	Log                 *slog.Logger

	// Container log rotation: size of a log file (default 10 MiB) and files
	// kept per container, the current one included (default 5).
	ContainerLogMaxSize  int64
	ContainerLogMaxFiles int

	// API side. Without a Client the kubelet runs static pods only.
	Client     kubernetes.Interface
	NodeLabels map[string]string // added to the well-known node labels
	NodeTaints []v1.Taint        // set when the node registers
	MaxPods    int64             // default 110
	// Images. Pull back-off (default 10 s doubling to 5 min), parallel pulls
	// per registry host (default 3), plain-HTTP registries besides
	// localhost/loopback (host or host:port).
	ImagePullBackoff    images.BackoffPolicy
	MaxPullsPerRegistry int
	InsecureRegistries  []string
	// Image GC: every ImageGCPeriod (default 5 min), when the image
	// filesystem (ImageFSDir, containerd's root, default /var/lib/containerd)
	// is more than ImageGCHighThresholdPercent used (default 85; 100
	// disables), unused images not used for ImageGCMinAge (default 2 min; <0:
	// none) are removed until it is below ImageGCLowThresholdPercent
	// (default 80). The pause image and the air-gap images are never removed.
	ImageGCHighThresholdPercent int
	ImageGCLowThresholdPercent  int
	ImageGCPeriod               time.Duration
	ImageGCMinAge               time.Duration
	ImageFSDir                  string

	// ProbeDial opens probe connections to pod IPs (nil: from CNIHostNetNS
	// when set, where the pod network is reachable; else the kubelet's own).
	ProbeDial probes.DialFunc

	// Events, if set, receives the kubelet's pod events instead of the API
	// (tests; without an API client events are otherwise dropped).
	Events record.EventRecorder

	// ParallelPodStarts bounds the pods creating their sandbox or starting
	// a container at once, oldest pod first (default DefaultParallelPodStarts).
	ParallelPodStarts int

	// StopPods makes Run stop every pod (gracefully, as a deletion would)
	// before it returns, within StopPodsTimeout (default
	// DefaultStopPodsTimeout). Off: pods keep running and the next start
	// adopts them.
	StopPods        bool
	StopPodsTimeout time.Duration
}

func (c *Config) defaults() error {
	if c.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("node name: %w", err)
		}
		c.NodeName = h
	}
	set := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	set(&c.RootDir, "/var/lib/hoist/kubelet")
	set(&c.ContainerdAddress, "/run/containerd/containerd.sock")
	set(&c.ContainerdNamespace, "k8s.hoist")
	set(&c.CNIConfDir, "/etc/cni/net.d")
	set(&c.LogRoot, "/var/log/pods")
	set(&c.PauseImage, airgap.PauseImage)
	set(&c.CgroupParent, "kubepods")
	if c.ContainerLogMaxSize == 0 {
		c.ContainerLogMaxSize = 10 << 20
	}
	if c.ContainerLogMaxFiles == 0 {
		c.ContainerLogMaxFiles = 5
	}
	if len(c.CNIBinDirs) == 0 {
		c.CNIBinDirs = []string{"/opt/cni/bin"}
	}
	if c.LogDriver == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("logging driver: %w", err)
		}
		c.LogDriver = logDriverBeside(exe)
	}
	if c.HostIP == "" {
		c.HostIP = firstHostIP()
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.ProbeDial == nil && c.CNIHostNetNS != "" {
		c.ProbeDial = dialInNetNS(c.CNIHostNetNS)
	}
	if c.ParallelPodStarts <= 0 {
		c.ParallelPodStarts = DefaultParallelPodStarts
	}
	if c.StopPodsTimeout <= 0 {
		c.StopPodsTimeout = DefaultStopPodsTimeout
	}
	if c.Housekeeping <= 0 {
		c.Housekeeping = 2 * time.Second
	}
	if c.ImageGCHighThresholdPercent == 0 && c.ImageGCLowThresholdPercent == 0 {
		c.ImageGCHighThresholdPercent, c.ImageGCLowThresholdPercent = 85, 80
	}
	set(&c.ImageFSDir, "/var/lib/containerd")
	set(&c.ResolvConf, "/etc/resolv.conf")
	if c.ImageGCPeriod <= 0 {
		c.ImageGCPeriod = 5 * time.Minute
	}
	switch {
	case c.ImageGCMinAge == 0:
		c.ImageGCMinAge = 2 * time.Minute
	case c.ImageGCMinAge < 0:
		c.ImageGCMinAge = 0
	}
	return c.imageGCPolicy().Validate()
}

func (c *Config) imageGCPolicy() images.GCPolicy {
	return images.GCPolicy{
		HighThresholdPercent: c.ImageGCHighThresholdPercent, LowThresholdPercent: c.ImageGCLowThresholdPercent,
		MinAge: c.ImageGCMinAge, Dir: c.ImageFSDir,
	}
}

// dialInNetNS dials from inside a netns: the socket keeps the netns it was
// created in, so the connection can be used from any goroutine.
func dialInNetNS(nsPath string) probes.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := nsutil.Do(nsPath, func() error {
			var d net.Dialer
			var err error
			conn, err = d.DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
}

func resolvConf(path string) string {
	if path == "-" {
		return ""
	}
	return path
}

func firstHostIP() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

// Run runs the kubelet until ctx ends. Pods keep running when it returns (a
// restarted kubelet adopts them) unless cfg.StopPods is set.
func Run(ctx context.Context, cfg Config) (err error) {
	if err := cfg.defaults(); err != nil {
		return err
	}
	log := cfg.Log.With("node", cfg.NodeName)
	if err := os.MkdirAll(cfg.RootDir, 0o750); err != nil {
		return err
	}
	client, err := containerd.New(cfg.ContainerdAddress, containerd.WithDefaultNamespace(cfg.ContainerdNamespace))
	if err != nil {
		return fmt.Errorf("connect to containerd at %s: %w", cfg.ContainerdAddress, err)
	}
	defer client.Close()
	pinned := map[string]bool{cfg.PauseImage: true} // never garbage-collected
	if cfg.ImageDir != "" {
		imported, err := airgap.ImportWithClient(namespaces.WithNamespace(ctx, cfg.ContainerdNamespace), client, cfg.ImageDir)
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopped while importing
			}
			return fmt.Errorf("import air-gap images from %s: %w", cfg.ImageDir, err)
		}
		for _, img := range imported {
			pinned[img.Ref] = true
			log.Info("air-gap image imported", "image", img.Ref, "digest", img.Digest)
		}
	}
	netw := network.New(network.Config{ConfDir: cfg.CNIConfDir, BinDirs: cfg.CNIBinDirs, CacheDir: filepath.Join(cfg.RootDir, "cni-cache"), HostNetNS: cfg.CNIHostNetNS})
	if err := netw.Status(); err != nil {
		log.Warn("pods cannot start until this is fixed", "err", err)
	}
	rt, err := runtime.New(runtime.Config{
		Client: client, Namespace: cfg.ContainerdNamespace, RootDir: cfg.RootDir, LogRoot: cfg.LogRoot,
		PauseImage: cfg.PauseImage, CgroupParent: cfg.CgroupParent, LogDriver: cfg.LogDriver, Network: netw,
		ResolvConf: resolvConf(cfg.ResolvConf), Log: log,
		LogRotation: crilog.Rotation{MaxSize: cfg.ContainerLogMaxSize, MaxFiles: cfg.ContainerLogMaxFiles},
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	api, err := startAPI(ctx, cfg, log, client, netw)
	if err != nil {
		return err
	}
	defer api.stop()
	var workers *podworkers.Workers
	events := api.recorder()
	if cfg.Events != nil {
		events = cfg.Events
	}
	handlers := &probes.Prober{Exec: rt, Dial: cfg.ProbeDial} // probes and lifecycle hooks
	prober := &probes.Manager{
		Runner: handlers, Events: events, Log: log,
		Seeds:    probes.DirSeeds{Dir: filepath.Join(cfg.RootDir, "probes")},
		OnChange: func(uid types.UID) { workers.Kick(uid) },
	}
	imgs, err := newImageManager(cfg, client, events, log)
	if err != nil {
		return err
	}
	go runImageGC(ctx, log, imgs, cfg.imageGCPolicy(), cfg.ImageGCPeriod, pinned)
	syncer := &podsync.Syncer{
		Runtime: rt, Images: imgs, Volumes: &volumes.Manager{Root: cfg.RootDir}, Status: status.NewManager(api.sink(cfg.StatusSink)),
		Probes: prober, Hooks: &lifecycle.Runner{Handlers: handlers}, Events: events, Backoff: cfg.Backoff, HostIP: cfg.HostIP, Log: log,
		Starts: startslots.New(cfg.ParallelPodStarts), PauseImage: cfg.PauseImage,
	}
	workers = podworkers.New(ctx, podworkers.Config{
		Sync: api.afterSync(syncer.SyncPod), Kill: api.afterKill(syncer.KillPod), Resync: cfg.Resync,
		OnError: func(pod *v1.Pod, op string, err error) {
			log.Error("pod "+op+" failed", "pod", pod.Namespace+"/"+pod.Name, "uid", pod.UID, "err", err)
		},
	})
	defer func() {
		cancel() // also when a source failed: workers only stop with ctx
		workers.Wait()
		if cfg.StopPods {
			err = errors.Join(err, stopAllPods(log, rt, syncer.StopPod, workers.Pods(), cfg.StopPodsTimeout))
		}
	}()

	var sources []config.Source
	if cfg.ManifestDir != "" {
		sources = append(sources, &config.StaticDir{Dir: cfg.ManifestDir, NodeName: cfg.NodeName, Interval: cfg.ManifestInterval, Log: log})
	}
	if api.source != nil {
		sources = append(sources, api.source)
	}
	updates := make(chan config.PodUpdate) // unbuffered: see Source.HasSynced
	errc := make(chan error, len(sources))
	for _, s := range sources {
		go func() { errc <- s.Run(ctx, updates) }()
	}
	go watchExits(ctx, log, cfg.ContainerdNamespace, client, rt, workers)

	log.Info("kubelet started", "root", cfg.RootDir, "containerd", cfg.ContainerdAddress, "namespace", cfg.ContainerdNamespace)
	tick := time.NewTicker(cfg.Housekeeping)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case u := <-updates:
			api.observe(u)
			if u.Op == config.Remove {
				workers.Remove(u.Pod)
			} else {
				workers.Update(u.Pod)
			}
		case <-tick.C:
			if allSynced(sources) {
				if err := removeOrphans(ctx, rt, workers); err != nil && ctx.Err() == nil {
					log.Error("orphan scan failed", "err", err)
				}
				api.sweepMirrors(ctx, time.Now())
			}
		}
	}
}

func allSynced(sources []config.Source) bool {
	for _, s := range sources {
		if !s.HasSynced() {
			return false
		}
	}
	return true
}

// removeOrphans hands every pod found in the runtime that no source wants to
// a worker for removal (containers, sandboxes, netns, CNI leases).
func removeOrphans(ctx context.Context, rt *runtime.Runtime, workers *podworkers.Workers) error {
	pods, err := rt.ListPodRefs(ctx)
	if err != nil {
		return err
	}
	for uid, p := range pods {
		if workers.Known(uid) {
			continue
		}
		orphan := &v1.Pod{}
		orphan.UID, orphan.Name, orphan.Namespace = uid, p.Name, p.Namespace
		workers.Remove(orphan)
	}
	return nil
}

// watchExits kicks a pod's worker as soon as one of its containers exits, so
// restarts and init progress do not wait for the periodic resync. A broken
// event stream (containerd restarting) is re-subscribed; the periodic resync
// covers the gap.
func watchExits(ctx context.Context, log *slog.Logger, namespace string, client *containerd.Client, rt *runtime.Runtime, workers *podworkers.Workers) {
	filter := fmt.Sprintf(`topic=="/tasks/exit",namespace==%q`, namespace)
	for ctx.Err() == nil {
		err := forwardExits(ctx, client, filter, rt, workers)
		if ctx.Err() != nil {
			return
		}
		log.Warn("containerd event stream broken; re-subscribing", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func forwardExits(ctx context.Context, client *containerd.Client, filter string, rt *runtime.Runtime, workers *podworkers.Workers) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, errs := client.Subscribe(ctx, filter)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			return err
		case env := <-msgs:
			if env == nil || env.Event == nil {
				continue
			}
			v, err := typeurl.UnmarshalAny(env.Event)
			exit, ok := v.(*eventstypes.TaskExit)
			if err != nil || !ok {
				continue
			}
			if uid := rt.PodUIDOf(ctx, exit.ContainerID); uid != "" {
				workers.Kick(uid)
			}
		}
	}
}
