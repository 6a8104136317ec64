package kubelet

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hoist-project/hoist/packaging/images"
)

// TestIntegrationKubeletStopPods runs `hoist kubelet --stop-pods` with three
// static pods (one with a 1 s preStop hook), stops it with SIGTERM and
// checks that it exited only after removing everything of them: no
// container, netns, host-local lease or sandbox checkpoint is left the
// moment the process is gone.
func TestIntegrationKubeletStopPods(t *testing.T) {
	s := newSuite(t)
	n := s.newNode(t, 25)
	p := n.startBinary(t, "--stop-pods", "--stop-pods-timeout", "30s")
	for i := range 3 {
		hook := ""
		if i == 0 {
			hook = "    lifecycle: {preStop: {sleep: {seconds: 1}}}\n"
		}
		n.write(fmt.Sprintf("stop-%d.yaml", i), podYAML(fmt.Sprintf("stop-%d", i), `  containers:
  - name: c
    image: `+images.TestboxImage+`
    args: [sleep]
`+hook))
	}
	waitFor(t, 60*time.Second, "3 pods running", func() (bool, string) {
		running := n.taskPIDs()
		return len(running) == 6, fmt.Sprintf("%d containers running", len(running))
	})
	if inv := n.inventory(); len(inv.netns) != 3 || len(inv.leases) != 3 || len(inv.sandboxes) != 3 {
		t.Fatalf("before the stop: %+v, want 3 netns, leases and checkpoints", inv)
	}
	t0 := time.Now()
	if err := p.term(60 * time.Second); err != nil {
		t.Fatalf("hoist kubelet --stop-pods after SIGTERM: %v", err)
	}
	took := time.Since(t0)
	if inv := n.inventory(); len(inv.containers)+len(inv.netns)+len(inv.leases)+len(inv.sandboxes) > 0 {
		t.Fatalf("left after the kubelet exited: %+v", inv)
	}
	if !strings.Contains(p.out.String(), `msg="all pods stopped" node=`+n.name+" pods=3") {
		t.Fatalf("no \"all pods stopped\" line for 3 pods:\n%s", p.out.String())
	}
	if took < time.Second {
		t.Fatalf("stopped in %s, before the 1 s preStop hook could end", took)
	}
	t.Logf("SIGTERM → exit with 3 pods stopped: %s", took.Round(time.Millisecond))
}
