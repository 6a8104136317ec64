package master

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoist-project/hoist/master/storage/storagetest"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// testMaster is an in-process master and an admin client built from its
// admin.kubeconfig, the file operators use.
type testMaster struct {
	// URL is the secure base URL (https://127.0.0.1:port).
	URL     string
	DataDir string
	Serving Serving
	// Kubeconfig is <data-dir>/admin.kubeconfig.
	Kubeconfig string
	// Rest is the admin client configuration loaded from Kubeconfig.
	Rest   *rest.Config
	client *http.Client
	// Stop ends the master and waits for Run to return (also done at cleanup).
	Stop func()
}

// startMaster runs the master in-process on free loopback ports (secure and
// embedded etcd) with a temporary data dir. etcdEndpoint "" embeds etcd.
func startMaster(t testing.TB, etcdEndpoint string, tweak func(*Config)) *testMaster {
	t.Helper()
	cfg := Config{
		DataDir:          t.TempDir(),
		EtcdClientURL:    storagetest.FreeURL(t),
		EtcdPeerURL:      storagetest.FreeURL(t),
		SecureAddress:    "127.0.0.1:0",
		BookmarkInterval: 200 * time.Millisecond,
		Stdout:           io.Discard,
	}
	if etcdEndpoint != "" {
		cfg.EtcdServers = []string{etcdEndpoint}
	}
	if tweak != nil {
		tweak(&cfg)
	}
	return runMaster(t, cfg)
}

// runMaster runs the master with cfg until the test ends.
func runMaster(t testing.TB, cfg Config) *testMaster {
	t.Helper()
	serving := make(chan Serving, 1)
	cfg.Serving = func(s Serving) { serving <- s }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
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
	}
	t.Cleanup(stop)
	select {
	case s := <-serving:
		m := newTestMaster(t, cfg.DataDir, s)
		// Closing the client's connection first spares Shutdown HTTP/2's
		// one-second GOAWAY grace period.
		m.Stop = func() { utilnet.CloseIdleConnectionsFor(m.client.Transport); stop() }
		t.Cleanup(m.Stop)
		return m
	case err := <-done:
		t.Fatalf("master exited: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("master not serving after 60s")
	}
	return nil
}

func newTestMaster(t testing.TB, dataDir string, s Serving) *testMaster {
	t.Helper()
	kc := filepath.Join(dataDir, "admin.kubeconfig")
	if s.AdminKubeconfig != kc {
		t.Fatalf("master reports admin kubeconfig %q, want %q", s.AdminKubeconfig, kc)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatalf("load %s: %v", kc, err)
	}
	client, err := rest.HTTPClientFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	return &testMaster{URL: rc.Host, DataDir: dataDir, Serving: s, Kubeconfig: kc, Rest: rc, client: client}
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

// send sends a request with c and reads the whole response.
func send(t testing.TB, c *http.Client, req *http.Request) response {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, b, resp.Header}
}

// do sends a request as the admin.
func (m *testMaster) do(t testing.TB, method, url, contentType string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return send(t, m.client, req)
}

// get GETs url as the admin with an optional Accept header.
func (m *testMaster) get(t testing.TB, url, accept string) response {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	return send(t, m.client, req)
}

// watchLines opens a watch as the admin and returns its decoded events as
// they come.
func (m *testMaster) watchLines(t *testing.T, url string) (<-chan map[string]any, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := m.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan map[string]any, 100)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 10<<20)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				out <- ev
			}
		}
	}()
	return out, cancel
}

func wantCode(t *testing.T, what string, r response, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: got HTTP %d, want %d: %s", what, r.code, code, r.body)
	}
}

// etcdCalls reads the master's etcd request counts by operation from
// /metrics.
func etcdCalls(t *testing.T, m *testMaster) map[string]float64 {
	r := m.get(t, m.URL+"/metrics", "text/plain")
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), `etcd_request_duration_seconds_count{operation="`)
		if !ok {
			continue
		}
		op, n, _ := strings.Cut(rest, `"} `)
		out[op], _ = strconv.ParseFloat(n, 64)
	}
	return out
}
