package kubelet

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/kubelet/runtime/crilog"
	"github.com/hoist-project/hoist/packaging/images"
)

// TestIntegrationKubeletBinary runs the real `hoist kubelet` command: flags,
// hoist-log-driver (found beside hoist) as the containers' logging driver,
// and SIGTERM stopping the kubelet while its pods keep running.
func TestIntegrationKubeletBinary(t *testing.T) {
	s := newSuite(t)
	n := s.newNode(t, 41)
	driver := testenv.Binary(t, LogDriverName) // beside hoist: the kubelet's default driver
	p := n.startBinary(t)
	n.write("a.yaml", podYAML("a", `  containers:
  - name: c
    image: `+images.TestboxImage+`
    command: [sh, -c, 'echo hello-from-binary; exec sleep 3600']
`))
	waitFor(t, 60*time.Second, "container log written by the hoist logging driver", func() (bool, string) {
		matches, _ := filepath.Glob(filepath.Join(n.cfg.LogRoot, "default_"+n.podName("a")+"_*", "c", "0.log"))
		if len(matches) != 1 {
			return false, "no log file yet"
		}
		b, _ := os.ReadFile(matches[0])
		return strings.Contains(string(b), " stdout F hello-from-binary\n"), string(b)
	})
	matches, _ := filepath.Glob(filepath.Join(n.cfg.LogRoot, "default_"+n.podName("a")+"_*", "c", "0.log"))
	if exe := logDriverExe(t, matches[0]); exe != driver {
		t.Fatalf("container c's logging driver runs %s, want %s", exe, driver)
	}
	pids := n.taskPIDs()
	t.Logf("hoist kubelet with one pod: VmRSS %s (anonymous %s, file %s)", procStatus(p.cmd.Process.Pid, "VmRSS"), procStatus(p.cmd.Process.Pid, "RssAnon"), procStatus(p.cmd.Process.Pid, "RssFile"))
	if err := p.term(30 * time.Second); err != nil {
		t.Fatalf("hoist kubelet after SIGTERM: %v", err)
	}
	after := n.taskPIDs()
	if len(pids) != 2 || len(after) != 2 {
		t.Fatalf("pods must keep running when the kubelet stops: before %v, after %v", pids, after)
	}
	// The node's cleanup (an in-process kubelet) adopts and removes the pod.
}

// logDriverExe returns the executable of the logging driver writing logPath.
func logDriverExe(t *testing.T, logPath string) string {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		spec, ok := crilog.DriverPath(args[1:])
		if !ok || !strings.Contains(spec, logPath) && !strings.Contains(spec, url.QueryEscape(logPath)) {
			continue
		}
		exe, err := os.Readlink(filepath.Join(filepath.Dir(f), "exe"))
		if err != nil {
			t.Fatal(err)
		}
		return exe
	}
	t.Fatalf("no logging driver process writes %s", logPath)
	return ""
}
