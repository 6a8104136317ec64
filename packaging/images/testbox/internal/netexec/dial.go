package netexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// DialRequest is one /dial call: send Request to Host:Port Tries times.
// For http, Request is a path (request=hostname GETs /hostname); for udp it
// is the datagram's payload.
type DialRequest struct {
	Host, Port, Protocol, Request string
	Tries                         int
}

func (r DialRequest) validate() error {
	if r.Host == "" || r.Port == "" {
		return errors.New("host and port are required")
	}
	if r.Protocol != "http" && r.Protocol != "udp" {
		return fmt.Errorf("protocol %q: want http or udp", r.Protocol)
	}
	return nil
}

// DialResult is the JSON answer of /dial, in agnhost's shape.
type DialResult struct {
	Responses []string `json:"responses"`
	Errors    []string `json:"errors"`
}

// Dialer connects onward from inside the pod. The zero value uses a 5s timeout per try.
type Dialer struct {
	Timeout time.Duration
}

// Dial makes req.Tries attempts and records each answer or error.
func (d *Dialer) Dial(ctx context.Context, req DialRequest) DialResult {
	timeout := d.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	res := DialResult{Responses: []string{}, Errors: []string{}}
	addr := net.JoinHostPort(req.Host, req.Port)
	for i := 0; i < req.Tries; i++ {
		tctx, cancel := context.WithTimeout(ctx, timeout)
		var (
			out string
			err error
		)
		if req.Protocol == "udp" {
			out, err = dialUDP(tctx, addr, req.Request)
		} else {
			out, err = dialHTTP(tctx, addr, req.Request)
		}
		cancel()
		if err != nil {
			res.Errors = append(res.Errors, err.Error())
			continue
		}
		res.Responses = append(res.Responses, out)
	}
	return res
}

func dialHTTP(ctx context.Context, addr, request string) (string, error) {
	url := "http://" + addr + "/" + strings.TrimPrefix(request, "/")
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	// A fresh transport per try: no connection reuse, so every try really dials.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(r)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

func dialUDP(ctx context.Context, addr, request string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte(request)); err != nil {
		return "", err
	}
	buf := make([]byte, 64<<10)
	n, err := conn.Read(buf)
	if err != nil {
		return "", fmt.Errorf("udp %s: no reply: %w", addr, err)
	}
	return string(buf[:n]), nil
}
