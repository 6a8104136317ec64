package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hoist-project/hoist/internal/fabric/record"
)

// started is a process this run of `up` started: exited is closed when it
// ends (it is our child until up returns, so up notices at once).
type started struct {
	Process
	exited chan struct{}
	err    error
}

// startDetached runs argv in its own session with output appended to
// log, inside the network namespace netnsPath when set (nsenter execs, so
// the recorded pid is argv's own). It outlives the calling process.
func startDetached(name, netnsPath, log string, argv []string) (*started, error) {
	if netnsPath != "" {
		nsenter, err := exec.LookPath("nsenter")
		if err != nil {
			return nil, errors.New("nsenter not found: install util-linux")
		}
		// nsenter, not `ip netns exec`: that also remounts /sys, hiding the
		// kubelet's pod netns mounts and cgroups from the rest of the machine.
		argv = append([]string{nsenter, "--net=" + netnsPath, "--"}, argv...)
	}
	if err := os.MkdirAll(filepath.Dir(log), 0o755); err != nil {
		return nil, err
	}
	out, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no signals from up's terminal
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &started{Process: Process{Name: name, PID: cmd.Process.Pid, Log: log, Argv: argv}, exited: make(chan struct{})}
	p.Start, _ = record.StartTime(p.PID) // an already exited process stays recorded with 0: never "running"
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// exitError describes a process that ended, with the tail of its log.
func (p *started) exitError() error {
	return fmt.Errorf("%s exited (%v); last lines of %s:\n%s", p.Name, p.err, p.Log, logTail(p.Log, 15))
}

// logTail returns the last n lines of a log file.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stopProcesses sends SIGTERM to every recorded process that still runs,
// SIGKILLs those still there after grace and waits for them to go. It
// returns the names of the processes it stopped.
func stopProcesses(ctx context.Context, procs []Process, grace time.Duration) ([]string, error) {
	var stopped []string
	var live []Process
	for _, p := range procs {
		if p.Running() {
			_ = syscall.Kill(p.PID, syscall.SIGTERM)
			live = append(live, p)
			stopped = append(stopped, fmt.Sprintf("%s (pid %d)", p.Name, p.PID))
		}
	}
	if !waitGone(ctx, live, grace) {
		for _, p := range live {
			if p.Running() {
				_ = syscall.Kill(p.PID, syscall.SIGKILL)
			}
		}
		if !waitGone(ctx, live, 10*time.Second) {
			var names []string
			for _, p := range live {
				if p.Running() {
					names = append(names, fmt.Sprintf("%s (pid %d)", p.Name, p.PID))
				}
			}
			return stopped, fmt.Errorf("processes survive SIGKILL: %s", strings.Join(names, ", "))
		}
	}
	return stopped, nil
}

// waitGone polls until no process of procs runs or d passes.
func waitGone(ctx context.Context, procs []Process, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		alive := false
		for _, p := range procs {
			alive = alive || p.Running()
		}
		if !alive {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}
