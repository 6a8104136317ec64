// Package ebpftest runs test clients where the eBPF proxy's socket
// programs see them: in a private cgroup v2 (never the real root) and a
// test network namespace. The client is the test binary itself: a test
// package's TestMain calls Main, which acts as the client when the
// environment asks for it.
package ebpftest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/proxy/ebpf"
)

const (
	modeEnv     = "HOIST_BPF_CLIENT"
	addrEnv     = "HOIST_BPF_ADDR"
	durationEnv = "HOIST_BPF_DURATION"
	countEnv    = "HOIST_BPF_COUNT"
)

// Main runs the client and exits when the environment asks for one;
// otherwise it returns and TestMain goes on with m.Run.
func Main() {
	mode := os.Getenv(modeEnv)
	if mode == "" {
		return
	}
	if err := client(mode, os.Getenv(addrEnv)); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Cgroup creates a cgroup "hoist-…" under the cgroup v2 mount, removed at
// the end of the test.
func Cgroup(t testing.TB) string {
	t.Helper()
	root, err := ebpf.CgroupV2Root()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, testenv.UniqueName("hoist-cg"))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("create a test cgroup under the cgroup v2 mount %s: %v", root, err)
	}
	t.Cleanup(func() {
		// Clients have exited by now; a cgroup with processes cannot go.
		deadline := time.Now().Add(10 * time.Second)
		for os.Remove(dir) != nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	})
	return dir
}

// Client runs client processes in one cgroup and network namespace.
type Client struct {
	Cgroup    string
	NetnsPath string
}

// Command returns the client process: `nsenter --net` into the netns,
// started directly inside the cgroup (clone3 CLONE_INTO_CGROUP), so its
// first connect already passes the cgroup's programs.
func (c Client) Command(ctx context.Context, mode, addr string, env ...string) (*exec.Cmd, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	cg, err := os.Open(c.Cgroup)
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, "nsenter", "--net="+c.NetnsPath, self)
	cmd.Env = append(append(os.Environ(), modeEnv+"="+mode, addrEnv+"="+addr), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	return cmd, func() { cg.Close() }, nil
}

// Run runs one client and returns its output line(s), trimmed.
func (c Client) Run(mode, addr string, env ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd, done, err := c.Command(ctx, mode, addr, env...)
	if err != nil {
		return "", err
	}
	defer done()
	out, err := cmd.CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return s, fmt.Errorf("%s client to %s: %w: %s", mode, addr, err, s)
	}
	return s, nil
}

// TCP connects once and returns the server's line and the peer address
// getpeername reports ("<line> peer=<addr>").
func (c Client) TCP(addr string) (string, error) { return c.Run("tcp", addr) }

// UDP sends one datagram from an unconnected socket and returns the reply
// and its source ("<reply> peer=<addr>").
func (c Client) UDP(addr string) (string, error) { return c.Run("udp", addr) }

// Loop is a client connecting to an address over and over.
type Loop struct {
	cmd  *exec.Cmd
	out  strings.Builder
	done func()
}

// StartLoop starts a client that connects to addr (and reads the server's
// line) back to back for d, then reports successes and failures.
func (c Client) StartLoop(addr string, d time.Duration) (*Loop, error) {
	cmd, done, err := c.Command(context.Background(), "loop", addr, durationEnv+"="+d.String())
	if err != nil {
		return nil, err
	}
	l := &Loop{cmd: cmd, done: done}
	cmd.Stdout, cmd.Stderr = &l.out, &l.out
	if err := cmd.Start(); err != nil {
		done()
		return nil, err
	}
	return l, nil
}

// Wait waits for the loop's end and returns its counts and first error.
func (l *Loop) Wait() (ok, failed int, firstErr string, err error) {
	err = l.cmd.Wait()
	l.done()
	out := strings.TrimSpace(l.out.String())
	if err != nil {
		return 0, 0, "", fmt.Errorf("loop client: %w: %s", err, out)
	}
	if _, err := fmt.Sscanf(out, "ok=%d failed=%d", &ok, &failed); err != nil {
		return 0, 0, "", fmt.Errorf("loop client output %q: %w", out, err)
	}
	if i := strings.Index(out, "first="); i >= 0 {
		firstErr = out[i+len("first="):]
	}
	return ok, failed, firstErr, nil
}

// Latency measures n connect+request+reply round trips to addr and
// returns them sorted.
func (c Client) Latency(addr string, n int) ([]time.Duration, error) {
	out, err := c.Run("latency", addr, countEnv+"="+strconv.Itoa(n))
	if err != nil {
		return nil, err
	}
	var ds []time.Duration
	for _, f := range strings.Fields(out) {
		ns, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("latency client output %q", out)
		}
		ds = append(ds, time.Duration(ns))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds, nil
}

// client is the client process's body.
func client(mode, addr string) error {
	switch mode {
	case "tcp":
		line, peer, err := tcpOnce(addr)
		if err != nil {
			return err
		}
		fmt.Printf("%s peer=%s\n", line, peer)
	case "udp":
		dst, err := net.ResolveUDPAddr("udp4", addr)
		if err != nil {
			return err
		}
		c, err := net.ListenUDP("udp4", &net.UDPAddr{}) // unconnected: sendmsg4/recvmsg4
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.WriteToUDP([]byte("hi"), dst); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 1500)
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			return err
		}
		fmt.Printf("%s peer=%s\n", strings.TrimSpace(string(buf[:n])), from)
	case "loop":
		d, err := time.ParseDuration(os.Getenv(durationEnv))
		if err != nil {
			return err
		}
		ok, failed, first := 0, 0, ""
		for end := time.Now().Add(d); time.Now().Before(end); {
			if _, _, err := tcpOnce(addr); err != nil {
				failed++
				if first == "" {
					first = err.Error()
				}
				continue
			}
			ok++
		}
		fmt.Printf("ok=%d failed=%d first=%s\n", ok, failed, first)
	case "latency":
		n, err := strconv.Atoi(os.Getenv(countEnv))
		if err != nil {
			return err
		}
		var b strings.Builder
		for i := 0; i < n; i++ {
			start := time.Now()
			if _, _, err := tcpOnce(addr); err != nil {
				return err
			}
			fmt.Fprintf(&b, "%d\n", time.Since(start).Nanoseconds())
		}
		fmt.Print(b.String())
	default:
		return fmt.Errorf("unknown client mode %q", mode)
	}
	return nil
}

// tcpOnce connects, reads one line and returns it with the peer address.
func tcpOnce(addr string) (line, peer string, err error) {
	c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err = bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", "", err
	}
	return strings.TrimSpace(line), c.RemoteAddr().String(), nil
}

// IsRefused reports whether a client failed with connection refused.
func IsRefused(out string, err error) bool {
	return err != nil && (strings.Contains(out, "refused") || errors.Is(err, syscall.ECONNREFUSED))
}
