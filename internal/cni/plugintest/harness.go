// Package plugintest is the integration harness of hoist's CNI plugins: a
// throw-away "host" network namespace per test (so bridges, veths and
// iptables rules never touch the machine's real namespace), container
// namespaces, and plugin binaries exec'd with the CNI environment inside the
// host namespace exactly as a runtime would.
package plugintest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/internal/testenv"
)

// Env is one test's host namespace plus the plugins to run in it.
type Env struct {
	t       testing.TB
	HostNS  string // path of the host namespace
	DataDir string // host-local dataDir
	BinDir  string // CNI_PATH: directory holding the plugin binaries
}

// NewEnv creates a host namespace with lo up, removed when the test ends.
// binDir is where plugins are found by name ("" = hoist's built plugins).
func NewEnv(t testing.TB, binDir string) *Env {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "iptables-restore", "iptables")
	if binDir == "" {
		binDir = HoistPlugins(t)
	}
	e := &Env{t: t, HostNS: NewNetns(t, "hst-h"), DataDir: t.TempDir(), BinDir: binDir}
	e.Run("ip", "link", "set", "lo", "up")
	return e
}

// HoistPlugins returns a directory with all of hoist's built plugin binaries.
func HoistPlugins(t testing.TB) string {
	t.Helper()
	var dir string
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		bin := testenv.Binary(t, "cni/"+p)
		if dir == "" {
			dir = filepath.Dir(bin)
		} else if filepath.Dir(bin) != dir {
			t.Fatalf("plugins built into different directories: %s and %s", dir, bin)
		}
	}
	return dir
}

// NewNetns creates a named namespace (prefix + unique suffix) deleted at cleanup.
func NewNetns(t testing.TB, prefix string) string {
	t.Helper()
	name := testenv.UniqueName(prefix)
	p, err := nsutil.CreateNamed(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nsutil.DeleteNamed(name) })
	return p
}

// Run runs a command inside the host namespace and returns its stdout; failing fails the test.
func (e *Env) Run(name string, args ...string) string {
	e.t.Helper()
	out, err := e.RunErr(name, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// RunErr runs a command inside the host namespace.
func (e *Env) RunErr(name string, args ...string) (string, error) {
	return RunIn(e.HostNS, nil, nil, name, args...)
}

// RunIn runs a command with the given netns, env and stdin.
func RunIn(nsPath string, env []string, stdin []byte, name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	err := nsutil.Do(nsPath, func() error {
		// The child is forked from this locked thread and inherits its namespace.
		cmd := exec.Command(name, args...)
		cmd.Env = env
		if stdin != nil {
			cmd.Stdin = bytes.NewReader(stdin)
		}
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		return cmd.Run()
	})
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// Call is one plugin invocation.
type Call struct {
	Plugin, Command, ContainerID, Netns, IfName string
	Config                                      []byte
	Args                                        string // CNI_ARGS
}

// Exec runs a plugin in the host namespace. It returns stdout and, when the
// plugin failed, the CNI error it printed (a non-JSON failure fails the test).
func (e *Env) Exec(c Call) ([]byte, *types.Error) {
	e.t.Helper()
	if c.IfName == "" {
		c.IfName = "eth0"
	}
	env := []string{
		"CNI_COMMAND=" + c.Command, "CNI_CONTAINERID=" + c.ContainerID, "CNI_NETNS=" + c.Netns,
		"CNI_IFNAME=" + c.IfName, "CNI_PATH=" + e.BinDir, "CNI_ARGS=" + c.Args, "PATH=" + os.Getenv("PATH"),
	}
	out, err := RunIn(e.HostNS, env, c.Config, filepath.Join(e.BinDir, c.Plugin))
	if err == nil {
		return []byte(out), nil
	}
	var cerr types.Error
	if jerr := json.Unmarshal([]byte(out), &cerr); jerr != nil || cerr.Code == 0 {
		e.t.Fatalf("%s %s: no CNI error JSON on failure: %v", c.Plugin, c.Command, err)
	}
	return []byte(out), &cerr
}

// MustExec is Exec that fails the test on a CNI error.
func (e *Env) MustExec(c Call) []byte {
	e.t.Helper()
	out, cerr := e.Exec(c)
	if cerr != nil {
		e.t.Fatalf("%s %s %s: code %d: %s %s", c.Plugin, c.Command, c.ContainerID, cerr.Code, cerr.Msg, cerr.Details)
	}
	return out
}

// InNS runs fn inside a namespace, failing the test on error.
func InNS(t testing.TB, nsPath string, fn func() error) {
	t.Helper()
	if err := nsutil.Do(nsPath, fn); err != nil {
		t.Fatal(err)
	}
}

// Leases returns the lease file names (addresses) of a network.
func (e *Env) Leases(network string) []string {
	e.t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.DataDir, network))
	if err != nil && !os.IsNotExist(err) {
		e.t.Fatal(err)
	}
	var out []string
	for _, en := range entries {
		if n := en.Name(); n != "lock" && !strings.HasPrefix(n, "last_reserved_ip") {
			out = append(out, n)
		}
	}
	return out
}

// Links returns the names of links in the host namespace whose name has prefix.
func (e *Env) Links(prefix string) []string {
	e.t.Helper()
	var out []string
	for _, l := range strings.Split(e.Run("ip", "-o", "link", "show"), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 {
			name := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
			if strings.HasPrefix(name, prefix) {
				out = append(out, name)
			}
		}
	}
	return out
}

// HoistRules counts hoist-owned iptables lines (chains and rules) in the host namespace.
func (e *Env) HoistRules() int {
	e.t.Helper()
	n := 0
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		for _, l := range strings.Split(e.Run(cmd), "\n") {
			if strings.Contains(l, "HOIST-") {
				n++
			}
		}
	}
	return n
}

// For returns the same environment reporting failures to t (for subtests).
func (e *Env) For(t testing.TB) *Env {
	c := *e
	c.t = t
	return &c
}

// Ping sends one ICMP echo from the namespace at nsPath (busybox ping).
func Ping(t testing.TB, nsPath, addr string) error {
	t.Helper()
	bb := testenv.RequireCommand(t, "busybox", "busybox-static")
	_, err := RunIn(nsPath, nil, nil, bb, "ping", "-c", "1", "-W", "2", addr)
	return err
}
