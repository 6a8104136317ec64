// Package ctrd runs a private containerd daemon: its own root, state, gRPC and
// ttrpc sockets under one directory, the CRI plugin disabled, so tests and the
// netns cluster never share (or disturb) the machine's system containerd.
//
// Every daemon leaves a record (see package record) naming its pid and
// directory; Sweep uses these to kill and clean up daemons of crashed runs.
package ctrd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd"

	"github.com/hoist-project/hoist/internal/fabric/record"
)

// DefaultRecordDir holds one record per private containerd daemon.
const DefaultRecordDir = record.BaseDir + "/containerd"

// MissingHint is the fix for a machine without the container runtime.
const MissingHint = "install containerd and runc (make deps)"

// Config says where and how to run a private daemon. Zero values pick defaults.
type Config struct {
	// Dir holds everything the daemon writes (root, state, sockets, log) and is
	// removed by Stop. Empty: a new directory /tmp/hoist-ctd-*, short enough for
	// unix socket paths (108 bytes).
	Dir string
	// Namespace is the containerd namespace Client() works in (default "hoist").
	Namespace string
	// Binary is the containerd executable (default: containerd from PATH).
	Binary string
	// RecordDir is where the sweeper record is written (default DefaultRecordDir).
	RecordDir string
	// StartTimeout bounds the wait for the daemon to answer (default 30s).
	StartTimeout time.Duration
}

// Record is what the sweeper needs to find and remove a daemon whose owner died.
type Record struct {
	Owner      record.Owner `json:"owner"`      // the process that started the daemon
	PID        int          `json:"pid"`        // the daemon
	Start      uint64       `json:"start"`      // the daemon's start time (guards against pid reuse)
	Dir        string       `json:"dir"`        // removed on cleanup
	Address    string       `json:"address"`    // gRPC socket; shims carry it on their command line
	Namespace  string       `json:"namespace"`  // the namespace handed out to the owner
	ConfigPath string       `json:"configPath"` // on the daemon's command line: proves a pid is ours
	recordPath string
}

// Daemon is a running private containerd.
type Daemon struct {
	Address      string // gRPC socket
	TTRPCAddress string
	Namespace    string
	Dir          string
	PID          int

	rec    Record
	cmd    *exec.Cmd
	exited chan struct{}
	client *containerd.Client
}

// Start launches a private containerd and waits until it answers Version.
func Start(ctx context.Context, cfg Config) (d *Daemon, err error) {
	bin := cfg.Binary
	if bin == "" {
		if bin, err = exec.LookPath("containerd"); err != nil {
			return nil, fmt.Errorf("containerd not found on PATH: %s", MissingHint)
		}
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return nil, fmt.Errorf("runc not found on PATH: %s", MissingHint)
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "hoist"
	}
	if cfg.RecordDir == "" {
		cfg.RecordDir = DefaultRecordDir
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	dir := cfg.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "hoist-ctd-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, err
	}
	// Mount points in /proc/self/mountinfo are resolved paths; so must ours be.
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		return nil, err
	}
	owner, err := record.Self()
	if err != nil {
		return nil, err
	}
	d = &Daemon{
		Address:      filepath.Join(dir, "containerd.sock"),
		TTRPCAddress: filepath.Join(dir, "containerd.ttrpc.sock"),
		Namespace:    cfg.Namespace,
		Dir:          dir,
		exited:       make(chan struct{}),
	}
	if len(d.TTRPCAddress) >= 108 {
		return nil, fmt.Errorf("containerd dir %s is too long for a unix socket path (108 bytes): use a shorter one", dir)
	}
	d.rec = Record{
		Owner:      owner,
		Dir:        dir,
		Address:    d.Address,
		Namespace:  cfg.Namespace,
		ConfigPath: filepath.Join(dir, "config.toml"),
		recordPath: filepath.Join(cfg.RecordDir, filepath.Base(dir)+".json"),
	}
	// From here on a failure tears down whatever exists.
	defer func() {
		if err != nil {
			err = errors.Join(err, d.Stop(context.Background()))
		}
	}()
	if err := os.WriteFile(d.rec.ConfigPath, []byte(configTOML(d)), 0o644); err != nil {
		return d, err
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		return d, err
	}
	defer logf.Close() // the child holds its own copy
	// Record before starting so that a crash right after Start leaves a trace.
	if err := record.Write(d.rec.recordPath, d.rec); err != nil {
		return d, fmt.Errorf("write containerd record: %w", err)
	}
	d.cmd = exec.Command(bin, "--config", d.rec.ConfigPath)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	// Own process group: a ^C meant for the test reaches us, and we stop the daemon in order.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		close(d.exited)
		return d, fmt.Errorf("start containerd: %w", err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	d.PID = d.cmd.Process.Pid
	d.rec.PID = d.PID
	if d.rec.Start, err = record.StartTime(d.PID); err != nil {
		return d, fmt.Errorf("containerd exited at once: %s", d.logTail())
	}
	if err := record.Write(d.rec.recordPath, d.rec); err != nil {
		return d, fmt.Errorf("write containerd record: %w", err)
	}
	if err := d.waitReady(ctx, cfg.StartTimeout); err != nil {
		return d, err
	}
	return d, nil
}

func configTOML(d *Daemon) string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(d.Dir, "root"), filepath.Join(d.Dir, "state"), d.Address, d.TTRPCAddress, filepath.Join(d.Dir, "opt"))
}

// waitReady polls Version until the daemon answers, exits, or time runs out.
func (d *Daemon) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var lastErr error
	for {
		select {
		case <-d.exited:
			return fmt.Errorf("containerd exited during start-up: %s", d.logTail())
		case <-ctx.Done():
			return fmt.Errorf("containerd at %s did not answer within %v (last error: %v): %s", d.Address, timeout, lastErr, d.logTail())
		default:
		}
		if _, err := os.Stat(d.Address); err == nil {
			c, err := containerd.New(d.Address, containerd.WithDefaultNamespace(d.Namespace), containerd.WithTimeout(2*time.Second))
			if err == nil {
				vctx, vcancel := context.WithTimeout(ctx, 2*time.Second)
				_, err = c.Version(vctx)
				vcancel()
				if err == nil {
					d.client = c
					return nil
				}
				c.Close()
			}
			lastErr = err
		}
		select {
		case <-ctx.Done():
		case <-d.exited:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (d *Daemon) logTail() string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "containerd.log"))
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	if len(b) == 0 {
		return "(empty log)"
	}
	return "log tail:\n" + string(b)
}

// Client returns a client of this daemon whose default namespace is Namespace.
// It is owned by the Daemon and closed by Stop.
func (d *Daemon) Client() *containerd.Client { return d.client }

// Stop kills every task, stops the daemon (SIGTERM, SIGKILL after 10s),
// unmounts everything under its directory and removes it and its record.
// It is safe to call more than once.
func (d *Daemon) Stop(ctx context.Context) error {
	var errs []error
	if d.client != nil {
		errs = append(errs, killAllTasks(ctx, d.client))
		d.client.Close()
		d.client = nil
	}
	if d.cmd != nil && d.cmd.Process != nil {
		errs = append(errs, terminate(d.cmd.Process.Signal, d.exited, 10*time.Second))
	}
	errs = append(errs, cleanupFiles(d.rec))
	return errors.Join(errs...)
}

// terminate sends SIGTERM, waits for done, then SIGKILL and waits again.
func terminate(signal func(os.Signal) error, done <-chan struct{}, grace time.Duration) error {
	select {
	case <-done:
		return nil
	default:
	}
	_ = signal(syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(grace):
	}
	_ = signal(syscall.SIGKILL)
	select {
	case <-done:
		return nil
	case <-time.After(grace):
		return errors.New("containerd did not exit after SIGKILL")
	}
}

// isOurs reports whether pid is still the daemon the record describes.
func (r Record) isOurs() bool {
	if !record.Running(r.PID, r.Start) {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", r.PID))
	return err == nil && strings.Contains(string(cmdline), r.ConfigPath)
}
