// Package master wires hoist's control plane: etcd (embedded or external),
// the storage layer, the generic registry, admission and the API server.
package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/hoist-project/hoist/internal/version"
	"github.com/hoist-project/hoist/master/allocator"
	"github.com/hoist-project/hoist/master/apiserver"
	"github.com/hoist-project/hoist/master/registry"
	"github.com/hoist-project/hoist/master/storage"
	"github.com/hoist-project/hoist/master/storage/embedded"
	clientv3 "go.etcd.io/etcd/client/v3"
	apiversion "k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/kubernetes/scheme"
)

// Config of the master.
type Config struct {
	// DataDir holds the embedded etcd's data (DataDir/etcd).
	DataDir string
	// EtcdServers selects an external etcd cluster; empty runs one embedded.
	EtcdServers []string
	// EtcdClientURL and EtcdPeerURL are the embedded member's loopback URLs.
	EtcdClientURL, EtcdPeerURL string
	// ServiceCIDR is the range ClusterIPs come from.
	ServiceCIDR string
	// NodePortRange is "first-last".
	NodePortRange string
	// InsecureAddress serves the API over plain HTTP (a stop-gap until TLS
	// and authentication are wired in). Port 0 picks a free port.
	InsecureAddress string
	// BookmarkInterval for watches that allow bookmarks (default 1 minute).
	BookmarkInterval time.Duration
	// CompactionInterval is how often etcd history is compacted (default
	// 5 minutes, as kube-apiserver).
	CompactionInterval time.Duration
	// WrapHandler, if set, wraps the API handler (authentication and
	// authorization filters plug in here).
	WrapHandler func(http.Handler) http.Handler
	// Serving, if set, is called with the listening address once the API
	// serves.
	Serving func(addr string)
}

// Defaults.
const (
	DefaultServiceCIDR     = "10.96.0.0/12"
	DefaultNodePortRange   = "30000-32767"
	DefaultInsecureAddress = "127.0.0.1:8080"
	DefaultEtcdClientURL   = "http://127.0.0.1:12379"
	DefaultEtcdPeerURL     = "http://127.0.0.1:12380"
)

func (c *Config) setDefaults() {
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = DefaultServiceCIDR
	}
	if c.NodePortRange == "" {
		c.NodePortRange = DefaultNodePortRange
	}
	if c.InsecureAddress == "" {
		c.InsecureAddress = DefaultInsecureAddress
	}
	if c.CompactionInterval == 0 {
		c.CompactionInterval = 5 * time.Minute
	}
	if c.EtcdClientURL == "" {
		c.EtcdClientURL = DefaultEtcdClientURL
	}
	if c.EtcdPeerURL == "" {
		c.EtcdPeerURL = DefaultEtcdPeerURL
	}
}

// Run serves the API until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	cfg.setDefaults()
	if cfg.DataDir == "" {
		return errors.New("master: --data-dir is required")
	}
	if _, err := allocator.ParseCIDR(cfg.ServiceCIDR); err != nil {
		return fmt.Errorf("master: --service-cidr: %w", err)
	}
	if _, err := allocator.ParsePortRange(cfg.NodePortRange); err != nil {
		return fmt.Errorf("master: --service-node-port-range: %w", err)
	}
	// Bind first so a port clash fails before etcd starts.
	ln, err := net.Listen("tcp", cfg.InsecureAddress)
	if err != nil {
		return fmt.Errorf("master: listen on %s: %w", cfg.InsecureAddress, err)
	}
	defer ln.Close()
	endpoints := cfg.EtcdServers
	if len(endpoints) == 0 {
		dir := filepath.Join(cfg.DataDir, "etcd")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("master: create etcd data dir: %w", err)
		}
		e, err := embedded.Start(embedded.Config{DataDir: dir, ClientURL: cfg.EtcdClientURL, PeerURL: cfg.EtcdPeerURL})
		if err != nil {
			return fmt.Errorf("master: %w", err)
		}
		defer e.Close()
		endpoints = []string{e.Endpoint}
	}
	client, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second})
	if err != nil {
		return fmt.Errorf("master: etcd client for %s: %w", strings.Join(endpoints, ","), err)
	}
	defer client.Close()

	metrics := newMetrics()
	st := storage.New(client, metrics.observeEtcd)
	if err := waitEtcd(ctx, st, endpoints); err != nil {
		return err
	}
	var stores []*registry.Store
	for _, res := range registry.Resources() {
		stores = append(stores, registry.NewStore(res, scheme.Scheme, st))
	}
	metrics.watchCaches(stores)

	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	for _, s := range stores {
		wg.Add(1)
		go func() { defer wg.Done(); s.Run(runCtx) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); st.RunCompactor(runCtx, cfg.CompactionInterval) }()

	adm, err := newAdmission(cfg, st, stores)
	if err != nil {
		return err
	}
	srv := apiserver.New(apiserver.Config{
		Scheme: scheme.Scheme,
		Stores: stores,
		Version: apiversion.Info{Major: "1", Minor: strings.Split(version.Kubernetes, ".")[1],
			GitVersion: version.Kubernetes, GitCommit: version.Version, GitTreeState: "clean",
			GoVersion: runtime.Version(), Compiler: runtime.Compiler, Platform: runtime.GOOS + "/" + runtime.GOARCH},
		Ready: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err := st.CurrentRevision(ctx)
			return err
		},
		BookmarkInterval: cfg.BookmarkInterval,
		Admission:        adm,
		Observe:          metrics.observeRequest,
		Extra:            map[string]http.Handler{"/metrics": metrics.handler()},
	})
	if err := bootstrap(ctx, srv, adm, cfg); err != nil {
		return fmt.Errorf("master: bootstrap: %w", err)
	}

	for _, s := range stores {
		if err := s.WaitReady(ctx); err != nil {
			return fmt.Errorf("master: watch cache of %s: %w", s.Res.Name, err)
		}
	}
	// Requests derive from runCtx so that stopping ends open watches.
	var handler http.Handler = srv
	if cfg.WrapHandler != nil {
		handler = cfg.WrapHandler(srv)
	}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second,
		BaseContext: func(net.Listener) context.Context { return runCtx }}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	slog.Info("hoist master serving (plain HTTP, no authentication: loopback stop-gap)", "address", ln.Addr().String(), "etcd", endpoints)
	controllersDone := make(chan error, 1)
	go func() { controllersDone <- runControllers(runCtx, ln.Addr().String()) }()
	if cfg.Serving != nil {
		cfg.Serving(ln.Addr().String())
	}
	select {
	case <-ctx.Done():
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		cancel() // end watches so Shutdown does not wait for them
		_ = hs.Shutdown(sctx)
		return nil
	case err := <-errc:
		return fmt.Errorf("master: serve: %w", err)
	case err := <-controllersDone:
		return fmt.Errorf("master: controllers: %w", err)
	}
}

// waitEtcd waits until etcd answers, naming the endpoints if it does not.
func waitEtcd(ctx context.Context, st *storage.Store, endpoints []string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := st.CurrentRevision(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("master: etcd at %s not reachable: %w", strings.Join(endpoints, ","), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
