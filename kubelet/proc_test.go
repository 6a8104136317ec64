package kubelet

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hoist-project/hoist/internal/testenv"
)

// kubeletProc is `hoist kubelet` run as a subprocess with n's configuration
// (static pods only).
type kubeletProc struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan error
	once   sync.Once
}

func (n *node) startBinary(t *testing.T, extra ...string) *kubeletProc {
	t.Helper()
	hoist := testenv.Binary(t, "hoist")
	args := append([]string{"kubelet",
		"--root-dir", n.cfg.RootDir, "--manifest-dir", n.manifests,
		"--containerd-address", n.cfg.ContainerdAddress, "--containerd-namespace", n.cfg.ContainerdNamespace,
		"--cni-conf-dir", n.cfg.CNIConfDir, "--cni-bin-dir", "/nonexistent:" + n.cfg.CNIBinDirs[0],
		"--cni-host-netns", n.hostNS, "--image-dir", n.cfg.ImageDir, "--log-root", n.cfg.LogRoot,
		"--node-name", n.name, "--cgroup-parent", n.cfg.CgroupParent}, extra...)
	p := &kubeletProc{cmd: exec.Command(hoist, args...), out: &syncBuffer{}, exited: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.kill9()
		if t.Failed() {
			t.Logf("hoist kubelet (pid %d) output:\n%s", p.cmd.Process.Pid, p.out.String())
		}
	})
	return p
}

// kill9 kills the kubelet with SIGKILL (once) and waits for it.
func (p *kubeletProc) kill9() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	})
}

// term stops the kubelet with SIGTERM and reports how it exited.
func (p *kubeletProc) term(timeout time.Duration) error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	var err error
	select {
	case err = <-p.exited:
	case <-time.After(timeout):
		return fmt.Errorf("hoist kubelet did not stop within %s of SIGTERM", timeout)
	}
	p.once.Do(func() {}) // exited: nothing left to kill
	return err
}

// procStatus returns one field of /proc/<pid>/status, e.g. VmRSS.
func procStatus(pid int, field string) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field+":") {
			return strings.Join(strings.Fields(l)[1:], " ")
		}
	}
	return ""
}
