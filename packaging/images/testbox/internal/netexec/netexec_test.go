package netexec

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestHandlerSimpleEndpoints(t *testing.T) {
	srv := httptest.NewServer(NewHandler(Config{Hostname: "pod-a"}))
	defer srv.Close()
	for _, tc := range []struct{ path, want string }{
		{"/hostname", "pod-a"},
		{"/echo?msg=" + url.QueryEscape("hello world"), "hello world"},
		{"/healthz", "ok"},
	} {
		code, body := get(t, srv, tc.path)
		if code != 200 || body != tc.want {
			t.Errorf("GET %s = %d %q, want 200 %q", tc.path, code, body, tc.want)
		}
	}
	code, body := get(t, srv, "/clientip")
	host, port, err := net.SplitHostPort(body)
	if code != 200 || err != nil || host != "127.0.0.1" || port == "" {
		t.Errorf("GET /clientip = %d %q (%v), want 127.0.0.1:<port>", code, body, err)
	}
}

func TestHandlerExit(t *testing.T) {
	got := make(chan int, 1)
	srv := httptest.NewServer(NewHandler(Config{Exit: func(c int) { got <- c }}))
	defer srv.Close()
	if code, body := get(t, srv, "/exit?code=3"); code != 200 || !strings.Contains(body, "3") {
		t.Fatalf("GET /exit?code=3 = %d %q", code, body)
	}
	select {
	case c := <-got:
		if c != 3 {
			t.Fatalf("exit code %d, want 3", c)
		}
	default:
		t.Fatal("exit was not called after the reply")
	}
	for _, bad := range []string{"", "x", "256", "-1"} {
		if code, _ := get(t, srv, "/exit?code="+bad); code != http.StatusBadRequest {
			t.Errorf("GET /exit?code=%s = %d, want 400", bad, code)
		}
	}
}

func TestHandlerShell(t *testing.T) {
	off := httptest.NewServer(NewHandler(Config{}))
	defer off.Close()
	code, body := get(t, off, "/shell?cmd=echo+hi")
	if code != http.StatusForbidden || !strings.Contains(body, "--enable-shell") {
		t.Fatalf("shell disabled: got %d %q, want 403 naming --enable-shell", code, body)
	}
	on := httptest.NewServer(NewHandler(Config{EnableShell: true}))
	defer on.Close()
	code, body = get(t, on, "/shell?cmd="+url.QueryEscape("echo hi"))
	var res shellResult
	if err := json.Unmarshal([]byte(body), &res); err != nil || code != 200 || res.Output != "hi\n" || res.Error != "" {
		t.Fatalf("shell enabled: got %d %q (%v)", code, body, err)
	}
}

func dialVia(t *testing.T, srv *httptest.Server, q url.Values) DialResult {
	t.Helper()
	code, body := get(t, srv, "/dial?"+q.Encode())
	if code != 200 {
		t.Fatalf("GET /dial?%s = %d %q", q.Encode(), code, body)
	}
	var res DialResult
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return res
}

func TestDialHTTP(t *testing.T) {
	target := httptest.NewServer(NewHandler(Config{Hostname: "target"}))
	defer target.Close()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(target.URL, "http://"))
	srv := httptest.NewServer(NewHandler(Config{Hostname: "client", Dialer: &Dialer{Timeout: 2 * time.Second}}))
	defer srv.Close()

	res := dialVia(t, srv, url.Values{"host": {host}, "port": {port}, "protocol": {"http"}, "request": {"hostname"}, "tries": {"3"}})
	if len(res.Responses) != 3 || len(res.Errors) != 0 || res.Responses[0] != "target" {
		t.Fatalf("dial http: %+v, want 3 responses \"target\"", res)
	}
	// A closed port is reported as an error, not as a response.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	_, closed, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	res = dialVia(t, srv, url.Values{"host": {"127.0.0.1"}, "port": {closed}, "request": {"hostname"}})
	if len(res.Responses) != 0 || len(res.Errors) != 1 {
		t.Fatalf("dial closed port: %+v, want one error", res)
	}
}

func TestDialUDP(t *testing.T) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ServeUDP(conn, "udp-pod") }()
	defer func() {
		conn.Close()
		if err := <-done; err != nil {
			t.Errorf("ServeUDP: %v", err)
		}
	}()
	_, port, _ := net.SplitHostPort(conn.LocalAddr().String())
	srv := httptest.NewServer(NewHandler(Config{Dialer: &Dialer{Timeout: 2 * time.Second}}))
	defer srv.Close()
	for req, want := range map[string]string{"hostname": "udp-pod", "echo hi there": "hi there"} {
		res := dialVia(t, srv, url.Values{"host": {"127.0.0.1"}, "port": {port}, "protocol": {"udp"}, "request": {req}, "tries": {"2"}})
		if len(res.Errors) != 0 || len(res.Responses) != 2 || res.Responses[0] != want {
			t.Errorf("dial udp %q: %+v, want 2 x %q", req, res, want)
		}
	}
}

func TestDialRejectsBadInput(t *testing.T) {
	srv := httptest.NewServer(NewHandler(Config{}))
	defer srv.Close()
	for _, q := range []string{"port=1", "host=a", "host=a&port=1&protocol=sctp", "host=a&port=1&tries=0"} {
		if code, _ := get(t, srv, "/dial?"+q); code != http.StatusBadRequest {
			t.Errorf("GET /dial?%s = %d, want 400", q, code)
		}
	}
}
