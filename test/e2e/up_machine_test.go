package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/internal/testenv/ctrdtest"
	"github.com/hoist-project/hoist/kubelet/runtime"
)

// upMachine stands for the machine `hoist up` runs on: a fresh netns with
// lo and a "NIC" holding the default route, a private containerd, the CNI
// plugins and a cgroup parent of its own, all removed by t.Cleanup.
type upMachine struct {
	t                    *testing.T
	hoist, kubectl       string
	nsenter, nsPath      string
	ctrd                 *ctrdtest.Containerd
	cniDir, cgroupParent string
	podNetnsSeen         map[string]bool // pod netns to remove at cleanup
}

func newUpMachine(t *testing.T, nodeIP string) *upMachine {
	t.Helper()
	testenv.RequireRoot(t)
	m := &upMachine{t: t, podNetnsSeen: map[string]bool{},
		nsenter: testenv.RequireCommand(t, "nsenter", "util-linux"),
		kubectl: testenv.RequireCommand(t, "kubectl", "kubectl"),
		hoist:   testenv.Binary(t, "hoist")}
	testenv.Binary(t, "pause") // hoist up builds its images from the binaries next to it
	testenv.Binary(t, "testbox")
	m.cniDir = t.TempDir()
	for _, p := range []string{"flannel", "host-local", "loopback", "portmap"} {
		if err := os.Symlink(testenv.Binary(t, "cni/"+p), filepath.Join(m.cniDir, p)); err != nil {
			t.Fatal(err)
		}
	}
	m.cgroupParent = testenv.UniqueName("hoist-kubepods")
	t.Cleanup(func() { // runs after the containerd cleanup below has killed every task
		if err := runtime.RemoveCgroupParent(m.cgroupParent); err != nil {
			t.Errorf("remove cgroup parent: %v", err)
		}
	})
	m.ctrd = ctrdtest.StartContainerd(t) // its cleanup kills whatever pods are left

	nsName := testenv.UniqueName("hoist-up")
	nsPath, err := nsutil.CreateNamed(nsName)
	if err != nil {
		t.Fatalf("create netns: %v", err)
	}
	m.nsPath = nsPath
	t.Cleanup(func() {
		// Pod netns are global: remove the ones this test's kubelet made and
		// left (only those: other tests' netns share the hoist- prefix).
		m.notePodNetns()
		named := namedNetns(t)
		for n := range m.podNetnsSeen {
			if named[n] {
				if err := nsutil.DeleteNamed(n); err != nil {
					t.Errorf("delete leftover netns %s: %v", n, err)
				}
			}
		}
		if err := nsutil.DeleteNamed(nsName); err != nil { // bridge, veths, iptables go with it
			t.Errorf("delete netns %s: %v", nsName, err)
		}
	})
	if err := nsutil.Do(nsPath, func() error { return setUpMachineNetns(nodeIP) }); err != nil {
		t.Fatalf("set up the machine netns: %v", err)
	}
	return m
}

// notePodNetns records the netns of the pods containerd knows now, for
// the cleanup (a stopped pod's netns is no longer in containerd).
func (m *upMachine) notePodNetns() map[string]bool {
	seen := podNetns(m.t, m.ctrd)
	for n := range seen {
		m.podNetnsSeen[n] = true
	}
	return seen
}

// inNS runs a command in the machine's netns. nsenter, not `ip netns
// exec`: the latter also gives the child a private mount namespace with a
// fresh /sys, which would hide the kubelet's pod netns bind mounts from
// containerd and /sys/fs/cgroup from the kubelet.
func (m *upMachine) inNS(name string, args ...string) *exec.Cmd {
	return exec.Command(m.nsenter, append([]string{"--net=" + m.nsPath, "--", name}, args...)...)
}

// upArgs are `hoist up`'s arguments for this machine; extra are appended.
func (m *upMachine) upArgs(dataDir, node string, extra ...string) []string {
	return append([]string{"up", "--data-dir", dataDir, "--secure-address", "127.0.0.1:6443", "--node-name", node,
		"--containerd-address", m.ctrd.Address, "--cni-bin-dir", m.cniDir, "--cgroup-parent", m.cgroupParent}, extra...)
}

// kubectlFunc runs the real kubectl in the machine's netns with the
// kubeconfig kc, stdin as its input.
func (m *upMachine) kubectlFunc(kc string) func(stdin string, args ...string) (string, error) {
	return func(stdin string, args ...string) (string, error) {
		var out, errb bytes.Buffer
		c := m.inNS(m.kubectl, append([]string{"--kubeconfig", kc, "--request-timeout=10s"}, args...)...)
		c.Stdin, c.Stdout, c.Stderr = strings.NewReader(stdin), &out, &errb
		if err := c.Run(); err != nil {
			return out.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, errb.String())
		}
		return out.String(), nil
	}
}
