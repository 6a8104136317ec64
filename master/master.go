// Package master wires hoist's control plane: etcd (embedded or external),
// the storage layer, the generic registry, admission, and the API server
// served over TLS behind authentication and authorization, with the node
// join API beside it.
package master

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	"github.com/hoist-project/hoist/master/join"
	"github.com/hoist-project/hoist/master/pki"
	"github.com/hoist-project/hoist/master/registry"
	"github.com/hoist-project/hoist/master/storage"
	"github.com/hoist-project/hoist/master/storage/embedded"
	clientv3 "go.etcd.io/etcd/client/v3"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	apiversion "k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
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
	// ClusterCIDR is the pod network node IPAM hands per-node podCIDRs out of.
	ClusterCIDR string
	// DisableControllers lists built-in controllers not to run (see
	// controllermanager.Names; "scheduler" disables the scheduler).
	DisableControllers []string
	// NodePortRange is "first-last".
	NodePortRange string
	// NodeMonitorGracePeriod is how long a node may stay silent before it
	// is marked Unknown; NodeMonitorPeriod how often nodes are checked;
	// PodEvictionTimeout how long pods without a toleration of their own
	// stay on a not-ready/unreachable node (upstream's default
	// tolerationSeconds). Zero: 40s, 5s, 300s as upstream.
	NodeMonitorGracePeriod, NodeMonitorPeriod, PodEvictionTimeout time.Duration
	// SecureAddress is where the API is served over TLS with
	// authentication and authorization (default 0.0.0.0:6443, as upstream).
	// Port 0 picks a free port.
	SecureAddress string
	// AdvertiseAddress is the IP nodes reach the API at: it goes into the
	// join instructions and the serving certificate. Empty: the bound
	// address, or for a wildcard bind the host's outbound address.
	AdvertiseAddress string
	// TLSSANs are extra serving-certificate SANs (DNS names or IPs, e.g. a
	// load balancer's name).
	TLSSANs []string
	// TokenAuthFile is an optional static bearer-token file
	// (token,user,uid[,"group1,group2"]), read at start.
	TokenAuthFile string
	// InsecureAddress, if set, additionally serves the API over plain HTTP
	// WITHOUT authentication or authorization (every client is cluster
	// admin). For debugging only; off by default.
	InsecureAddress string
	// BookmarkInterval for watches that allow bookmarks (default 1 minute).
	BookmarkInterval time.Duration
	// CompactionInterval is how often etcd history is compacted (default
	// 5 minutes, as kube-apiserver).
	CompactionInterval time.Duration
	// Stdout receives the join instructions (os.Stdout when nil).
	Stdout io.Writer
	// Serving, if set, is called once the API serves.
	Serving func(Serving)
}

// Serving describes a master that has started serving.
type Serving struct {
	// SecureAddress is the bound TLS listener address (host:port).
	SecureAddress string
	// InsecureAddress is the bound plain-HTTP address, "" when off.
	InsecureAddress string
	// LocalURL is how clients on this machine reach the API; admin.kubeconfig points there.
	LocalURL string
	// AdvertisedURL is the server URL in the join instructions.
	AdvertisedURL string
	// AdminKubeconfig is <data-dir>/admin.kubeconfig.
	AdminKubeconfig string
	// JoinToken and CACertHash are what a node needs to join (see join.Join).
	JoinToken, CACertHash string
}

// Defaults.
const (
	DefaultServiceCIDR   = "10.96.0.0/12"
	DefaultClusterCIDR   = "10.244.0.0/16"
	DefaultNodePortRange = "30000-32767"
	DefaultSecureAddress = "0.0.0.0:6443"
	DefaultEtcdClientURL = "http://127.0.0.1:12379"
	DefaultEtcdPeerURL   = "http://127.0.0.1:12380"
)

func (c *Config) setDefaults() {
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = DefaultServiceCIDR
	}
	if c.ClusterCIDR == "" {
		c.ClusterCIDR = DefaultClusterCIDR
	}
	if c.NodePortRange == "" {
		c.NodePortRange = DefaultNodePortRange
	}
	if c.SecureAddress == "" {
		c.SecureAddress = DefaultSecureAddress
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
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
	ln, err := net.Listen("tcp", cfg.SecureAddress)
	if err != nil {
		return fmt.Errorf("master: --secure-address: listen on %s: %w", cfg.SecureAddress, err)
	}
	defer ln.Close()
	var insecureLn net.Listener
	if cfg.InsecureAddress != "" {
		if insecureLn, err = net.Listen("tcp", cfg.InsecureAddress); err != nil {
			return fmt.Errorf("master: --insecure-address: listen on %s: %w", cfg.InsecureAddress, err)
		}
		defer insecureLn.Close()
	}
	sec, err := setUpSecurity(cfg, ln.Addr())
	if err != nil {
		return fmt.Errorf("master: %w", err)
	}
	tlsCfg, err := sec.pki.ServerTLSConfig()
	if err != nil {
		return fmt.Errorf("master: %w", err)
	}
	endpoints := cfg.EtcdServers
	var client *clientv3.Client
	if len(endpoints) == 0 {
		dir := filepath.Join(cfg.DataDir, "etcd")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("master: create etcd data dir: %w", err)
		}
		var e *embedded.Etcd
		if e, err = embedded.Start(embedded.Config{DataDir: dir, ClientURL: cfg.EtcdClientURL, PeerURL: cfg.EtcdPeerURL}); err != nil {
			return fmt.Errorf("master: %w", err)
		}
		defer e.Close()
		endpoints = []string{e.Endpoint}
		client, err = e.Client()
	} else {
		client, err = clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second})
	}
	if err != nil {
		return fmt.Errorf("master: etcd client for %s: %w", strings.Join(endpoints, ","), err)
	}
	defer client.Close()

	metrics := newMetrics()
	metrics.reg.MustRegister(pki.NewExpiryCollector(sec.pki.CertificateExpiries))
	st := storage.New(client, metrics.observeEtcd)
	if err := waitEtcd(ctx, st, endpoints); err != nil {
		return err
	}
	var stores []*registry.Store
	for _, res := range registry.Resources() {
		stores = append(stores, registry.NewStore(res, scheme.Scheme, st))
	}
	metrics.watchCaches(stores)

	// Cancelled explicitly (on a stop below, or when Run returns), not with
	// ctx: on a graceful stop the API keeps serving until this master has
	// left the kubernetes Service's endpoints.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
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
		Tokens:           sec.tokens,
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
	loopback, err := sec.loopbackConfig()
	if err != nil {
		return fmt.Errorf("master: %w", err)
	}
	loopbackHTTP, err := rest.HTTPClientFor(loopback)
	if err != nil {
		return fmt.Errorf("master: loopback client: %w", err)
	}
	announce, err := masterEndpoints(st, sec.addrs.advertised, loopback, loopbackHTTP,
		func(ctx context.Context) error { return ensureKubernetesService(ctx, srv, adm, cfg) })
	if err != nil {
		return fmt.Errorf("master: %w", err)
	}
	log := slog.Default()
	hs, info := startServers(runCtx, sec, tlsCfg, ln, insecureLn, srv, log)
	log.Info("hoist master serving", "address", info.SecureAddress, "local", info.LocalURL,
		"advertised", info.AdvertisedURL, "admin-kubeconfig", info.AdminKubeconfig, "etcd", endpoints)
	fmt.Fprint(cfg.Stdout, join.Instructions(info.AdvertisedURL, info.JoinToken, info.CACertHash))
	controllersDone := make(chan error, 1)
	go func() { controllersDone <- runControllers(runCtx, cfg, loopback, loopbackHTTP) }()
	announceCtx, stopAnnouncing := context.WithCancel(ctx)
	defer stopAnnouncing()
	endpointsDone := make(chan struct{})
	wg.Add(1)
	go func() { defer wg.Done(); defer close(endpointsDone); announce(announceCtx) }()
	if cfg.Serving != nil {
		cfg.Serving(info)
	}
	select {
	case <-ctx.Done():
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		// Leave the kubernetes Service's endpoints while the API serves.
		select {
		case <-endpointsDone:
		case <-sctx.Done():
		}
		cancel() // end watches so Shutdown does not wait for them
		// The controllers' connection is ours: close it instead of letting
		// Shutdown wait out HTTP/2's one-second GOAWAY grace period.
		select {
		case <-controllersDone:
		case <-sctx.Done():
		}
		utilnet.CloseIdleConnectionsFor(loopbackHTTP.Transport)
		hs.shutdown(sctx)
		return nil
	case err := <-hs.errc:
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
