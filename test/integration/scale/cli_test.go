package scale

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hoist-project/hoist/internal/testenv"
)

// TestE2EHollowNodeCommand runs `hoist hollow-node` against a master: its
// nodes register and turn Ready, a pod is scheduled onto one and runs with
// an IP from the node's podCIDR, and SIGTERM ends the command cleanly.
func TestE2EHollowNodeCommand(t *testing.T) {
	m := startMaster(t)
	var out lockedBuffer
	cmd := exec.Command(testenv.Binary(t, "hoist"), "hollow-node", "--count", "3", "--kubeconfig", m.Kubeconfig,
		"--name-prefix", "cli-", "--lease-interval", "1s", "--cpu", "2", "--memory", "4Gi", "--pods", "20")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	ctx := context.Background()
	waitFor(t, "3 cli-* nodes Ready", 60*time.Second, func() (bool, string) {
		list, err := m.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		ready := 0
		for i := range list.Items {
			n := &list.Items[i]
			if strings.HasPrefix(n.Name, "cli-") && nodeReady(n) && n.Status.Allocatable.Cpu().Value() == 2 &&
				n.Status.Allocatable.Pods().Value() == 20 && n.Spec.PodCIDR != "" {
				ready++
			}
		}
		return ready == 3, fmt.Sprintf("%d ready with capacity and podCIDR; output: %s", ready, out.String())
	})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: podTemplate("p", "img:v1", false).Spec}
	if _, err := m.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pod p running in its node's podCIDR", 60*time.Second, func() (bool, string) {
		p, err := m.Client.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
		if err != nil || p.Spec.NodeName == "" {
			return false, fmt.Sprint(err)
		}
		n, err := m.Client.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		prefix := strings.TrimSuffix(n.Spec.PodCIDR, "0/24")
		return p.Status.Phase == corev1.PodRunning && strings.HasPrefix(p.Status.PodIP, prefix),
			fmt.Sprintf("phase %s IP %q, node %s podCIDR %s", p.Status.Phase, p.Status.PodIP, n.Name, n.Spec.PodCIDR)
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Fatalf("hollow-node after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("hollow-node did not exit 30 s after SIGTERM:\n%s", out.String())
	}
}

type lockedBuffer = testenv.SyncBuffer
