package master

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/hoist-project/hoist/master/storage/storagetest"
)

// startMaster runs the master in-process on free loopback ports with a
// temporary data dir and returns its base URL. etcdEndpoint "" embeds etcd.
func startMaster(t *testing.T, etcdEndpoint string, tweak func(*Config)) string {
	t.Helper()
	return startMasterOn(t, etcdEndpoint, tweak)
}

// startMasterTB starts a master with embedded etcd for benchmarks.
func startMasterTB(tb testing.TB) string { return startMasterOn(tb, "", nil) }

func startMasterOn(t testing.TB, etcdEndpoint string, tweak func(*Config)) string {
	t.Helper()
	cfg := Config{
		DataDir:          t.TempDir(),
		EtcdClientURL:    storagetest.FreeURL(t),
		EtcdPeerURL:      storagetest.FreeURL(t),
		InsecureAddress:  "127.0.0.1:0",
		BookmarkInterval: 200 * time.Millisecond,
	}
	if etcdEndpoint != "" {
		cfg.EtcdServers = []string{etcdEndpoint}
	}
	if tweak != nil {
		tweak(&cfg)
	}
	addr := make(chan string, 1)
	cfg.Serving = func(a string) { addr <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("master.Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("master did not stop within 20s")
		}
	})
	select {
	case a := <-addr:
		return "http://" + a
	case err := <-done:
		t.Fatalf("master exited: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("master not serving after 60s")
	}
	return ""
}

type response struct {
	code int
	body []byte
	hdr  http.Header
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not JSON: %v: %s", r.code, err, r.body)
	}
	return m
}

func do(t *testing.T, method, url, contentType string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, b, resp.Header}
}

func wantCode(t *testing.T, what string, r response, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: got HTTP %d, want %d: %s", what, r.code, code, r.body)
	}
}
