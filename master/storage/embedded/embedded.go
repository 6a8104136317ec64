// Package embedded runs an etcd member inside the hoist master process, on
// loopback ports of its own so it never clashes with a system etcd on 2379.
package embedded

import (
	"fmt"
	"net/url"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc"
	"go.etcd.io/etcd/server/v3/proxy/grpcproxy/adapter"
)

// Config of the embedded member.
type Config struct {
	DataDir string
	// ClientURL and PeerURL are loopback URLs, e.g. http://127.0.0.1:2479.
	ClientURL, PeerURL string
}

// Etcd is a running embedded member.
type Etcd struct {
	e *embed.Etcd
	// Endpoint is the client URL to dial.
	Endpoint string
}

// Start starts the member and waits until it serves.
func Start(c Config) (*Etcd, error) {
	curl, err := url.Parse(c.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd client URL %q: %w", c.ClientURL, err)
	}
	purl, err := url.Parse(c.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd peer URL %q: %w", c.PeerURL, err)
	}
	cfg := embed.NewConfig()
	cfg.Name = "hoist"
	cfg.Dir = c.DataDir
	cfg.LogLevel = "error"
	cfg.ListenClientUrls = []url.URL{*curl}
	cfg.AdvertiseClientUrls = []url.URL{*curl}
	cfg.ListenPeerUrls = []url.URL{*purl}
	cfg.AdvertisePeerUrls = []url.URL{*purl}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", c.DataDir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s not ready after 60s", c.DataDir)
	}
	return &Etcd{e: e, Endpoint: curl.String()}, nil
}

// Client returns a client of the member for the master: its KV requests
// (reads, writes, transactions, compaction) call the member in process,
// through the same server code as over gRPC (quota checks included) but
// without encoding each request and response for a loopback connection;
// watches go over gRPC to the client URL as before, so the watch cache
// hears of a write after the writer does, not before. Close it before the
// member.
func (e *Etcd) Client() (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	c.KV = clientv3.NewKVFromKVClient(adapter.KvServerToKvClient(v3rpc.NewQuotaKVServer(e.e.Server)), c)
	return c, nil
}

// Close stops the member.
func (e *Etcd) Close() { e.e.Close() }
