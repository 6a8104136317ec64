package probes

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func hostPort(t *testing.T, addr string) (string, int32) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return h, int32(n)
}

func TestHTTPGetProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Probe") != "yes" || r.Host != "probe.example" {
			http.Error(w, "missing header", http.StatusBadRequest)
			return
		}
		if r.URL.Path == "/healthz" {
			w.WriteHeader(http.StatusOK)
			return
		}
		http.Error(w, "sick", http.StatusInternalServerError)
	}))
	defer srv.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsSrv.Close()
	ip, port := hostPort(t, srv.Listener.Addr().String())
	_, tlsPort := hostPort(t, tlsSrv.Listener.Addr().String())
	var dials atomic.Int32
	p := &Prober{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	c := &v1.Container{Ports: []v1.ContainerPort{{Name: "http", ContainerPort: port}}}
	target := Target{PodIP: ip, Container: c}
	headers := []v1.HTTPHeader{{Name: "X-Probe", Value: "yes"}, {Name: "Host", Value: "probe.example"}}
	get := func(path string, port intstr.IntOrString, scheme v1.URIScheme) *v1.Probe {
		return &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: path, Port: port, Scheme: scheme, HTTPHeaders: headers}}}
	}
	if ok, msg := p.Run(context.Background(), target, get("/healthz", intstr.FromString("http"), "")); !ok {
		t.Fatalf("healthy endpoint failed: %s", msg)
	}
	ok, msg := p.Run(context.Background(), target, get("/other", intstr.FromInt32(port), ""))
	if ok || !strings.Contains(msg, "statuscode: 500") {
		t.Fatalf("500 endpoint: ok=%v msg=%q", ok, msg)
	}
	if ok, msg := p.Run(context.Background(), target, get("/", intstr.FromInt32(tlsPort), v1.URISchemeHTTPS)); !ok {
		t.Fatalf("HTTPS with a self-signed certificate failed: %s", msg)
	}
	if dials.Load() < 3 {
		t.Fatalf("the configured dialer was used %d times, want every probe", dials.Load())
	}
	if ok, msg := p.Run(context.Background(), target, get("/", intstr.FromString("nope"), "")); ok || !strings.Contains(msg, `no port named "nope"`) {
		t.Fatalf("unknown named port: ok=%v msg=%q", ok, msg)
	}
}

func TestHTTPGetTimeoutIsFailure(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	ip, port := hostPort(t, srv.Listener.Addr().String())
	pr := &v1.Probe{TimeoutSeconds: 1, ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Port: intstr.FromInt32(port)}}}
	start := time.Now()
	ok, msg := (&Prober{}).Run(context.Background(), Target{PodIP: ip}, pr)
	if ok || !strings.Contains(msg, "timeout") {
		t.Fatalf("hanging server: ok=%v msg=%q", ok, msg)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeoutSeconds=1 took %s", d)
	}
}

func TestTCPSocketProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ip, port := hostPort(t, ln.Addr().String())
	pr := &v1.Probe{ProbeHandler: v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(port)}}}
	if ok, msg := (&Prober{}).Run(context.Background(), Target{PodIP: ip}, pr); !ok {
		t.Fatalf("open port failed: %s", msg)
	}
	ln.Close()
	if ok, _ := (&Prober{}).Run(context.Background(), Target{PodIP: ip}, pr); ok {
		t.Fatal("closed port passed")
	}
	if ok, msg := (&Prober{}).Run(context.Background(), Target{}, pr); ok || !strings.Contains(msg, "no IP") {
		t.Fatalf("pod without IP: ok=%v msg=%q", ok, msg)
	}
}

func TestGRPCProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	defer srv.Stop()
	ip, port := hostPort(t, ln.Addr().String())
	svc := "db"
	pr := &v1.Probe{ProbeHandler: v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: port, Service: &svc}}}
	hs.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
	if ok, msg := (&Prober{}).Run(context.Background(), Target{PodIP: ip}, pr); !ok {
		t.Fatalf("serving service failed: %s", msg)
	}
	hs.SetServingStatus(svc, healthpb.HealthCheckResponse_NOT_SERVING)
	if ok, msg := (&Prober{}).Run(context.Background(), Target{PodIP: ip}, pr); ok || !strings.Contains(msg, "NOT_SERVING") {
		t.Fatalf("not-serving service: ok=%v msg=%q", ok, msg)
	}
}

type fakeExec struct {
	code  int
	out   string
	block bool
}

func (f fakeExec) Exec(ctx context.Context, id string, cmd []string) (int, []byte, error) {
	if f.block {
		<-ctx.Done()
		return -1, nil, ctx.Err()
	}
	return f.code, []byte(f.out), nil
}

func TestExecProbe(t *testing.T) {
	pr := &v1.Probe{TimeoutSeconds: 1, ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"cat", "/tmp/healthy"}}}}
	if ok, msg := (&Prober{Exec: fakeExec{}}).Run(context.Background(), Target{}, pr); !ok {
		t.Fatalf("exit 0 failed: %s", msg)
	}
	ok, msg := (&Prober{Exec: fakeExec{code: 1, out: "no such file\n"}}).Run(context.Background(), Target{}, pr)
	if ok || !strings.Contains(msg, "exited with 1: no such file") {
		t.Fatalf("exit 1: ok=%v msg=%q", ok, msg)
	}
	if ok, msg := (&Prober{Exec: fakeExec{block: true}}).Run(context.Background(), Target{}, pr); ok || !strings.Contains(msg, "timeout") {
		t.Fatalf("hanging command: ok=%v msg=%q", ok, msg)
	}
}
