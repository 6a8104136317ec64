package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/master/join"
	"github.com/hoist-project/hoist/master/pki"
)

// TestKubeletJoinFlagsGoTogether checks that a partial set of join flags is
// a usage error naming what is missing, before anything starts.
func TestKubeletJoinFlagsGoTogether(t *testing.T) {
	const server, token, hash = "https://192.0.2.1:6443", "abcdef.0123456789abcdef", "sha256:00"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--join-server", server}, "--join-server given without --join-token and --join-ca-cert-hash"},
		{[]string{"--join-token", token}, "--join-token given without --join-server and --join-ca-cert-hash"},
		{[]string{"--join-server", server, "--join-token", token}, "--join-server and --join-token given without --join-ca-cert-hash"},
		{[]string{"--join-token", token, "--join-ca-cert-hash", hash}, "--join-token and --join-ca-cert-hash given without --join-server"},
	} {
		err := runKubelet(context.Background(), append([]string{"--root-dir", t.TempDir()}, tc.args...))
		var ue usageError
		if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
	if err := (joinFlags{}).check(); err != nil {
		t.Errorf("no join flags: %v", err)
	}
	if err := (joinFlags{server, token, hash}).check(); err != nil {
		t.Errorf("all three join flags: %v", err)
	}
}

// joinMaster serves the master's join API and counts the requests it gets.
type joinMaster struct {
	flags    joinFlags
	requests atomic.Int32
}

func startJoinMaster(t *testing.T) *joinMaster {
	t.Helper()
	dir := t.TempDir()
	p, err := pki.Ensure(pki.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	token, err := join.EnsureToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := &joinMaster{}
	h := &join.Handler{Token: token, CA: p.CA}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	if srv.TLS, err = p.ServerTLSConfig(); err != nil {
		t.Fatal(err)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	m.flags = joinFlags{server: srv.URL, token: token, caHash: p.CA.Hash()}
	return m
}

var discard = slog.New(slog.DiscardHandler)

// TestKubeletJoinWritesThenReuses: the first start joins and writes the
// node's kubeconfig under the root dir; the next start, even with a wrong
// token, uses that file without contacting the master.
func TestKubeletJoinWritesThenReuses(t *testing.T) {
	m := startJoinMaster(t)
	root := t.TempDir()
	path, err := m.flags.nodeKubeconfig(context.Background(), discard, "", root, "n1")
	if err != nil || path != filepath.Join(root, join.KubeconfigFile) {
		t.Fatalf("join: %q %v, want %s", path, err, filepath.Join(root, join.KubeconfigFile))
	}
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil || cfg.AuthInfos["system:node:n1"] == nil {
		t.Fatalf("kubeconfig %s: %v, want the system:node:n1 user", path, err)
	}
	before, joined := string(testenv.ReadFile(t, path)), m.requests.Load()

	wrong := m.flags
	wrong.token = "abcdef.0123456789abcdef"
	again, err := wrong.nodeKubeconfig(context.Background(), discard, "", root, "n1")
	if err != nil || again != path {
		t.Fatalf("restart: %q %v, want %s", again, err, path)
	}
	if n := m.requests.Load(); n != joined {
		t.Errorf("restart contacted the master (%d requests, %d before)", n, joined)
	}
	if string(testenv.ReadFile(t, path)) != before {
		t.Error("restart rewrote the kubeconfig")
	}
}

// TestKubeletJoinKubeconfigFlag: --kubeconfig names where the joined
// kubeconfig goes; nothing is written under the root dir.
func TestKubeletJoinKubeconfigFlag(t *testing.T) {
	m := startJoinMaster(t)
	root, want := t.TempDir(), filepath.Join(t.TempDir(), "etc", "node.kubeconfig")
	path, err := m.flags.nodeKubeconfig(context.Background(), discard, want, root, "n1")
	if err != nil || path != want {
		t.Fatalf("join: %q %v, want %s", path, err, want)
	}
	if _, err := os.Stat(filepath.Join(root, join.KubeconfigFile)); !os.IsNotExist(err) {
		t.Errorf("a kubeconfig was also written under the root dir: %v", err)
	}
}

// TestKubeletJoinFailures checks the one-line errors of failed joins and
// that they leave no kubeconfig behind.
func TestKubeletJoinFailures(t *testing.T) {
	m := startJoinMaster(t)
	other := startJoinMaster(t)
	down := httptest.NewTLSServer(http.NotFoundHandler())
	down.Close()
	for name, tc := range map[string]struct {
		flags joinFlags
		want  string
	}{
		"wrong token":    {joinFlags{m.flags.server, "abcdef.0123456789abcdef", m.flags.caHash}, "rejected the join token"},
		"wrong CA pin":   {joinFlags{m.flags.server, m.flags.token, other.flags.caHash}, "pinned hash is " + other.flags.caHash},
		"unreachable":    {joinFlags{down.URL, m.flags.token, m.flags.caHash}, "fetch cluster CA from " + down.URL},
		"malformed hash": {joinFlags{m.flags.server, m.flags.token, "sha256:abc"}, "CA cert hash \"sha256:abc\" must look like"},
	} {
		root := t.TempDir()
		_, err := tc.flags.nodeKubeconfig(context.Background(), discard, "", root, "n1")
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: got %v, want one line containing %q", name, err, tc.want)
		}
		if _, err := os.Stat(filepath.Join(root, join.KubeconfigFile)); !os.IsNotExist(err) {
			t.Errorf("%s: a kubeconfig was written: %v", name, err)
		}
	}
}
