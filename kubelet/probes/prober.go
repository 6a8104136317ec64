package probes

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Execer runs a command inside a running container (kubelet/runtime
// implements it on containerd).
type Execer interface {
	Exec(ctx context.Context, containerID string, cmd []string) (exitCode int, output []byte, err error)
}

// DialFunc opens connections to pods. In production it is a plain dialer in
// the node's network namespace; tests dial through their own netns.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Target is the container a probe runs against.
type Target struct {
	PodIP       string
	ContainerID string
	Container   *v1.Container
}

// Prober runs one probe attempt of any handler type.
type Prober struct {
	Exec Execer
	Dial DialFunc // nil: net.Dialer
}

const maxOutput = 10 << 10 // probe output kept for messages and events

func (p *Prober) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if p.Dial != nil {
		return p.Dial(ctx, network, addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// Run performs one attempt within the probe's timeoutSeconds; a timeout is a
// failure. msg says why it failed (or the output of a passing exec).
func (p *Prober) Run(ctx context.Context, t Target, probe *v1.Probe) (ok bool, msg string) {
	ctx, cancel := context.WithTimeout(ctx, seconds(probe.TimeoutSeconds, 1))
	defer cancel()
	if err := p.RunHandler(ctx, t, probe.ProbeHandler); err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return false, fmt.Sprintf("timeout after %s: %v", seconds(probe.TimeoutSeconds, 1), err)
		}
		return false, err.Error()
	}
	return true, ""
}

// RunHandler runs one handler until it finishes or ctx ends (no timeout of
// its own): probes wrap it in timeoutSeconds, lifecycle hooks in the
// termination grace period.
func (p *Prober) RunHandler(ctx context.Context, t Target, h v1.ProbeHandler) error {
	switch {
	case h.Exec != nil:
		return p.exec(ctx, t, h.Exec)
	case h.HTTPGet != nil:
		return p.httpGet(ctx, t, h.HTTPGet)
	case h.TCPSocket != nil:
		return p.tcp(ctx, t, h.TCPSocket)
	case h.GRPC != nil:
		return p.grpc(ctx, t, h.GRPC)
	}
	return errors.New("probe has no handler (exec, httpGet, tcpSocket or grpc)")
}

func (p *Prober) exec(ctx context.Context, t Target, e *v1.ExecAction) error {
	if p.Exec == nil {
		return errors.New("exec probes are not supported by this runtime")
	}
	code, out, err := p.Exec.Exec(ctx, t.ContainerID, e.Command)
	if err != nil {
		return fmt.Errorf("exec %q: %w", e.Command, err)
	}
	if code != 0 {
		return fmt.Errorf("command %q exited with %d: %s", e.Command, code, strings.TrimSpace(string(out)))
	}
	return nil
}

func (p *Prober) address(t Target, host string, port intstr.IntOrString) (string, error) {
	if host == "" {
		host = t.PodIP
	}
	if host == "" {
		return "", errors.New("pod has no IP yet")
	}
	n, err := resolvePort(port, t.Container)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// resolvePort turns a number or a named container port into a number.
func resolvePort(port intstr.IntOrString, c *v1.Container) (int, error) {
	if port.Type == intstr.Int {
		if port.IntVal <= 0 || port.IntVal > 65535 {
			return 0, fmt.Errorf("invalid port %d", port.IntVal)
		}
		return int(port.IntVal), nil
	}
	if c != nil {
		for _, cp := range c.Ports {
			if cp.Name == port.StrVal {
				return int(cp.ContainerPort), nil
			}
		}
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("container has no port named %q", port.StrVal)
}

func (p *Prober) httpGet(ctx context.Context, t Target, h *v1.HTTPGetAction) error {
	addr, err := p.address(t, h.Host, h.Port)
	if err != nil {
		return err
	}
	scheme := strings.ToLower(string(h.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := h.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := &url.URL{Scheme: scheme, Host: addr}
	if pu, err := url.Parse(path); err == nil {
		u.Path, u.RawQuery = pu.Path, pu.RawQuery
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/hoist")
	req.Header.Set("Accept", "*/*")
	for _, hd := range h.HTTPHeaders {
		if strings.EqualFold(hd.Name, "Host") {
			req.Host = hd.Value
			continue
		}
		req.Header.Add(hd.Name, hd.Value)
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext:       p.dial,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // as upstream: probes do not verify
		DisableKeepAlives: true,
	}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("HTTP probe %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxOutput))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("HTTP probe %s failed with statuscode: %d: %s", u, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

func (p *Prober) tcp(ctx context.Context, t Target, s *v1.TCPSocketAction) error {
	addr, err := p.address(t, s.Host, s.Port)
	if err != nil {
		return err
	}
	conn, err := p.dial(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial tcp %s: %w", addr, err)
	}
	return conn.Close()
}

func (p *Prober) grpc(ctx context.Context, t Target, g *v1.GRPCAction) error {
	addr, err := p.address(t, "", intstr.FromInt32(g.Port))
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUserAgent("kube-probe/hoist"),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return p.dial(ctx, "tcp", a) }),
	)
	if err != nil {
		return fmt.Errorf("grpc probe %s: %w", addr, err)
	}
	defer conn.Close()
	service := ""
	if g.Service != nil {
		service = *g.Service
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return fmt.Errorf("grpc health check %s: %w", addr, err)
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("grpc service %s status: %s", addr, resp.Status)
	}
	return nil
}
