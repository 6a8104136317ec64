// Package etcdtest runs Debian's etcd for flannel's integration tests: on
// free ports, a temporary data dir, and optionally an extra address (the
// fabric's host IP) so daemons inside node namespaces reach it.
package etcdtest

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hoist-project/hoist/internal/testenv"
)

// Server is a running (or stopped) etcd.
type Server struct {
	t        testing.TB
	args     []string
	cmd      *exec.Cmd
	done     chan struct{}
	log      bytes.Buffer
	Endpoint string // on the extra address, for node namespaces (Local if none)
	Local    string // on 127.0.0.1
}

// Start runs etcd until t ends; extra, if valid, is listened on too.
func Start(t testing.TB, extra netip.Addr) *Server {
	t.Helper()
	bin := testenv.RequireCommand(t, "etcd", "etcd-server")
	client, peer := testenv.FreePort(t), testenv.FreePort(t)
	s := &Server{t: t, Local: fmt.Sprintf("http://127.0.0.1:%d", client)}
	s.Endpoint = s.Local
	urls := s.Local
	if extra.IsValid() {
		s.Endpoint = fmt.Sprintf("http://%s:%d", extra, client)
		urls += "," + s.Endpoint
	}
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	s.args = []string{bin, "--name", "hoist-test", "--data-dir", t.TempDir(),
		"--listen-client-urls", urls, "--advertise-client-urls", s.Local,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "hoist-test=" + peerURL, "--log-level", "error"}
	s.Restart()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() && s.log.Len() > 0 {
			t.Logf("etcd output:\n%s", s.log.String())
		}
	})
	return s
}

// Restart starts etcd again on the same data dir and waits until it serves.
func (s *Server) Restart() {
	s.t.Helper()
	s.cmd = exec.Command(s.args[0], s.args[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start etcd: %v", err)
	}
	s.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(s.cmd, s.done)
	cli := s.Client()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return
		}
		select {
		case <-s.done:
			s.t.Fatalf("etcd exited before serving:\n%s", s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("etcd did not serve within 20s: %v\n%s", err, s.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop kills etcd (an outage: the data dir stays for Restart).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Client returns a client on Local, closed when t ends.
func (s *Server) Client() *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Local}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { cli.Close() })
	return cli
}

// Put writes key or fails the test.
func (s *Server) Put(key, value string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.Client().Put(ctx, key, value); err != nil {
		s.t.Fatalf("etcd put %s: %v", key, err)
	}
}

// Delete removes key or fails the test.
func (s *Server) Delete(key string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.Client().Delete(ctx, key); err != nil {
		s.t.Fatalf("etcd delete %s: %v", key, err)
	}
}
