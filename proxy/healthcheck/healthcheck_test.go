package healthcheck

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestHealth(t *testing.T) {
	now := time.Unix(1000, 0)
	h := NewHealth(time.Minute, func() time.Time { return now })
	code := func() int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		return rec.Code
	}
	if code() != http.StatusServiceUnavailable {
		t.Fatal("healthy before the first sync")
	}
	h.Synced()
	if code() != http.StatusOK {
		t.Fatal("unhealthy after a sync")
	}
	h.Queued()
	now = now.Add(30 * time.Second)
	if code() != http.StatusOK {
		t.Fatal("unhealthy while a change waits less than the timeout")
	}
	now = now.Add(31 * time.Second)
	if code() != http.StatusServiceUnavailable {
		t.Fatal("healthy although a change waited longer than the timeout")
	}
	h.Synced()
	if code() != http.StatusOK {
		t.Fatal("unhealthy after catching up")
	}
}

func TestNodePortServers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := int32(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	s := NewNodePortServers()
	defer s.Close()
	svc := types.NamespacedName{Namespace: "default", Name: "web"}
	get := func() int {
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
			if err == nil {
				resp.Body.Close()
				return resp.StatusCode
			}
			if time.Now().After(deadline) {
				t.Fatalf("health-check node port: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := s.Sync(map[int32]Want{port: {svc, 2}}); err != nil {
		t.Fatal(err)
	}
	if c := get(); c != http.StatusOK {
		t.Fatalf("with local endpoints: %d", c)
	}
	if err := s.Sync(map[int32]Want{port: {svc, 0}}); err != nil {
		t.Fatal(err)
	}
	if c := get(); c != http.StatusServiceUnavailable {
		t.Fatalf("without local endpoints: %d", c)
	}
	s.Sync(nil)
	if _, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
		t.Fatal("port still served after removal")
	}
}
