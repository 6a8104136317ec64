package scale

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// kubectlIn returns a function running kubectl against m in namespace ns;
// a failing command fails the test with its output.
func kubectlIn(t *testing.T, kubectl string, m *master, ns string) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		cmd := exec.Command(kubectl, append([]string{"-n", ns}, args...)...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+m.Kubeconfig)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
}

// testDaemonSetRolloutUndo drives a DaemonSet's ControllerRevisions through
// real kubectl: rollout history lists one revision per template, and
// rollout undo restores the previous template (renumbering its revision).
func testDaemonSetRolloutUndo(t *testing.T, m *master, kubectl string) {
	ns := createNamespace(t, m.Client, "dsundo")
	run := kubectlIn(t, kubectl, m, ns)
	maxUnavailable := intstr.FromString("50%")
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			Template: podTemplate("agent", "img:v1", false),
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &maxUnavailable}},
		},
	}
	if _, err := m.Client.AppsV1().DaemonSets(ns).Create(context.Background(), ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	run("rollout", "status", "daemonset/agent", "--timeout=90s")
	run("set", "image", "daemonset/agent", "c=img:v2")
	run("rollout", "status", "daemonset/agent", "--timeout=90s")
	hist := run("rollout", "history", "daemonset/agent")
	if !strings.Contains(hist, "\n1 ") || !strings.Contains(hist, "\n2 ") {
		t.Fatalf("rollout history should list revisions 1 and 2:\n%s", hist)
	}
	if rev := run("rollout", "history", "daemonset/agent", "--revision=1"); !strings.Contains(rev, "img:v1") {
		t.Fatalf("revision 1 should show image img:v1:\n%s", rev)
	}
	if got := run("get", "controllerrevisions"); !strings.Contains(got, "daemonset.apps/agent") {
		t.Fatalf("kubectl get controllerrevisions should name the DaemonSet as CONTROLLER:\n%s", got)
	}
	run("rollout", "undo", "daemonset/agent")
	run("rollout", "status", "daemonset/agent", "--timeout=90s")
	if img := run("get", "daemonset/agent", "-o", "jsonpath={.spec.template.spec.containers[0].image}"); img != "img:v1" {
		t.Fatalf("after rollout undo the template runs %q, want img:v1", img)
	}
	waitFor(t, "every agent back on img:v1", 60*time.Second, func() (bool, string) {
		imgs := map[string]int{}
		for _, p := range livePods(t, m.Client, ns, "app=agent") {
			imgs[p.Spec.Containers[0].Image]++
		}
		return imgs["img:v1"] > 0 && len(imgs) == 1, fmt.Sprint(imgs)
	})
	waitFor(t, "rollout history listing revisions 2 and 3", 30*time.Second, func() (bool, string) {
		hist = run("rollout", "history", "daemonset/agent")
		return strings.Contains(hist, "\n2 ") && strings.Contains(hist, "\n3 ") && !strings.Contains(hist, "\n1 "), hist
	})
}
