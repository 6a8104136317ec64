package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/cio"
)

// limitedBuffer keeps the first max bytes written to it (probe output).
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// Exec runs cmd in a running container (as the container's process: same
// user, env, cwd and namespaces) and returns its exit code and the first
// 10 KiB of its combined output. When ctx ends first the process is killed
// and ctx's error returned.
func (r *Runtime) Exec(ctx context.Context, containerID string, cmd []string) (int, []byte, error) {
	if len(cmd) == 0 {
		return -1, nil, errors.New("exec: empty command")
	}
	nctx := r.ns(context.WithoutCancel(ctx))
	c, err := r.client.LoadContainer(nctx, containerID)
	if err != nil {
		return -1, nil, fmt.Errorf("exec in %s: %w", containerID, err)
	}
	spec, err := c.Spec(nctx)
	if err != nil {
		return -1, nil, err
	}
	task, err := c.Task(nctx, nil)
	if err != nil {
		return -1, nil, fmt.Errorf("exec in %s: container is not running: %w", containerID, err)
	}
	pspec := *spec.Process
	pspec.Args = cmd
	pspec.Terminal = false
	out := &limitedBuffer{max: 10 << 10}
	proc, err := task.Exec(nctx, "probe-"+newID()[:16], &pspec, cio.NewCreator(cio.WithStreams(nil, out, out)))
	if err != nil {
		return -1, nil, fmt.Errorf("exec in %s: %w", containerID, err)
	}
	defer proc.Delete(nctx) // exited (or killed) by then
	exitc, err := proc.Wait(nctx)
	if err != nil {
		return -1, nil, err
	}
	if err := proc.Start(nctx); err != nil {
		return -1, nil, fmt.Errorf("exec %q in %s: %w", cmd, containerID, err)
	}
	select {
	case st := <-exitc:
		proc.IO().Wait()
		out.mu.Lock()
		defer out.mu.Unlock()
		return int(st.ExitCode()), bytes.Clone(out.buf.Bytes()), st.Error()
	case <-ctx.Done():
		_ = proc.Kill(nctx, syscall.SIGKILL)
		select { // bounded: a wedged shim must not hang the prober
		case <-exitc:
		case <-time.After(5 * time.Second):
		}
		return -1, nil, ctx.Err()
	}
}
