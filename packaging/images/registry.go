package images

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RegistryBinary is Debian's docker-registry (distribution v2).
const RegistryBinary = "/usr/bin/docker-registry"

// Registry is a docker-registry process serving plain HTTP on loopback.
type Registry struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	log  string
}

// StartRegistry starts docker-registry with its storage and log under dataDir
// on a free loopback port, and returns once it answers /v2/.
func StartRegistry(ctx context.Context, dataDir string) (*Registry, error) {
	if _, err := os.Stat(RegistryBinary); err != nil {
		return nil, fmt.Errorf("%s not found: install docker-registry (make deps)", RegistryBinary)
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	storage := filepath.Join(dataDir, "storage")
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return nil, err
	}
	config := filepath.Join(dataDir, "config.yml")
	yml := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", storage, addr)
	if err := os.WriteFile(config, []byte(yml), 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dataDir, "registry.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(RegistryBinary, "serve", config)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", RegistryBinary, err)
	}
	r := &Registry{addr: addr, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); close(r.done) }()
	if err := r.waitReady(ctx, 15*time.Second); err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (r *Registry) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get("http://" + r.addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-r.done:
			return fmt.Errorf("docker-registry exited at start: %s", r.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("docker-registry not answering on %s after %s: %s", r.addr, timeout, r.logTail())
		}
	}
}

func (r *Registry) logTail() string {
	b, _ := os.ReadFile(r.log)
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}

// Addr is the registry's host:port.
func (r *Registry) Addr() string { return r.addr }

// Stop terminates the registry and waits for it (SIGKILL after 5s).
func (r *Registry) Stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// Push pushes every image archive in dir to this registry.
func (r *Registry) Push(ctx context.Context, dir string) ([]Image, error) {
	return Push(ctx, r.addr, dir)
}

// Push pushes every image archive in dir to the plain-HTTP registry at
// host:port as host:port/<ref>, e.g. 127.0.0.1:5000/hoist.test/pause:3.10.
// Manifests are pushed byte for byte, so digests stay the built ones.
func Push(ctx context.Context, registry, dir string) ([]Image, error) {
	archives, err := List(dir)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "hoist-push-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	var out []Image
	for i, a := range archives {
		tag, err := name.NewTag(registry+"/"+a.Ref, name.Insecure)
		if err != nil {
			return nil, fmt.Errorf("%s: bad reference: %w", a.Path, err)
		}
		lp := filepath.Join(tmp, fmt.Sprint(i))
		if err := extractArchive(a.Path, lp); err != nil {
			return nil, err
		}
		idx, err := layout.ImageIndexFromPath(lp)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.Path, err)
		}
		h, err := v1.NewHash(a.Digest)
		if err != nil {
			return nil, fmt.Errorf("%s: bad digest %q: %w", a.Path, a.Digest, err)
		}
		img, err := idx.Image(h)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.Path, err)
		}
		if err := remote.Write(tag, img, remote.WithContext(ctx)); err != nil {
			return nil, fmt.Errorf("push %s: %w", tag, err)
		}
		out = append(out, Image{Ref: tag.String(), Digest: a.Digest, Path: a.Path})
	}
	return out, nil
}
