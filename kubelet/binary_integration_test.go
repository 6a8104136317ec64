package kubelet

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/packaging/images"
)

// TestIntegrationKubeletBinary runs the real `hoist kubelet` command: flags,
// the hoist binary as the containers' logging driver, and SIGTERM stopping
// the kubelet while its pods keep running.
func TestIntegrationKubeletBinary(t *testing.T) {
	s := newSuite(t)
	n := s.newNode(t, 41)
	hoist := testenv.Binary(t, "hoist")
	cmd := exec.Command(hoist, "kubelet",
		"--root-dir", n.cfg.RootDir, "--manifest-dir", n.manifests,
		"--containerd-address", n.cfg.ContainerdAddress, "--containerd-namespace", n.cfg.ContainerdNamespace,
		"--cni-conf-dir", n.cfg.CNIConfDir, "--cni-bin-dir", "/nonexistent:"+n.cfg.CNIBinDirs[0],
		"--cni-host-netns", n.hostNS, "--image-dir", n.cfg.ImageDir, "--log-root", n.cfg.LogRoot,
		"--node-name", n.name, "--cgroup-parent", n.cfg.CgroupParent)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("hoist kubelet output:\n%s", out.String())
		}
	})
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
	pids := n.taskPIDs()
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmRSS:") {
				t.Logf("hoist kubelet with one pod: %s", strings.Join(strings.Fields(l), " "))
			}
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("hoist kubelet exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("hoist kubelet did not stop within 30s of SIGTERM")
	}
	after := n.taskPIDs()
	if len(pids) != 2 || len(after) != 2 {
		t.Fatalf("pods must keep running when the kubelet stops: before %v, after %v", pids, after)
	}
	// The node's cleanup (an in-process kubelet) adopts and removes the pod.
}
