// Package storagetest starts real etcd servers for tests: the embedded one
// hoist uses by default (over gRPC, or with the master's client, which
// calls its KV API in process), and Debian's etcd binary as an external
// server.
// Both listen on free loopback ports and are stopped by t.Cleanup.
package storagetest

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/master/storage/embedded"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// FreeURL returns an http://127.0.0.1:PORT URL on a port reserved for t.
func FreeURL(t testing.TB) string {
	t.Helper()
	return testenv.FreeLoopbackURL(t)
}

// Embedded starts an embedded etcd member and returns its client endpoint.
func Embedded(t testing.TB) string {
	t.Helper()
	e, err := embedded.Start(embedded.Config{DataDir: t.TempDir(), ClientURL: FreeURL(t), PeerURL: FreeURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e.Endpoint
}

// InProcess starts an embedded etcd member and returns the client the
// master uses with it (KV calls in process, watches over gRPC); both are
// closed by t.Cleanup.
func InProcess(t testing.TB) *clientv3.Client {
	t.Helper()
	e, err := embedded.Start(embedded.Config{DataDir: t.TempDir(), ClientURL: FreeURL(t), PeerURL: FreeURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	c, err := e.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() }) // runs before e.Close
	return c
}

// External starts Debian's /usr/bin/etcd (3.4) and returns its endpoint.
func External(t testing.TB) string {
	t.Helper()
	bin := testenv.RequireCommand(t, "etcd", "etcd-server")
	client, peer := FreeURL(t), FreeURL(t)
	cmd := exec.Command(bin, "--name", "hoist-test", "--data-dir", t.TempDir(),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "hoist-test="+peer, "--log-level", "error")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	c := Client(t, client)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Get(ctx, "probe")
		cancel()
		if err == nil {
			return client
		}
		if time.Now().After(deadline) {
			t.Fatalf("external etcd %s not ready after 30s: %v", client, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Client dials endpoint; closed by t.Cleanup.
func Client(t testing.TB, endpoint string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(fmt.Errorf("etcd client %s: %w", endpoint, err))
	}
	t.Cleanup(func() { c.Close() })
	return c
}
