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

// testRolloutPauseResumeRestart drives `kubectl rollout pause|resume|restart`:
// a paused Deployment takes a new template without rolling it out, resume
// rolls it out, restart rolls the same template out again.
func testRolloutPauseResumeRestart(t *testing.T, m *master, kubectl string) {
	ns := createNamespace(t, m.Client, "pause")
	run := kubectlIn(t, kubectl, m, ns)
	ctx := context.Background()
	if _, err := m.Client.AppsV1().Deployments(ns).Create(ctx, deployment("web", 3, "img:v1", 1, 0, false), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	run("rollout", "status", "deployment/web", "--timeout=90s")
	run("rollout", "pause", "deployment/web")
	run("set", "image", "deployment/web", "c=img:v2")
	waitFor(t, "the paused template change observed", 30*time.Second, func() (bool, string) {
		d, err := m.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return d.Status.ObservedGeneration == d.Generation && progressingReason(d) == "DeploymentPaused",
			fmt.Sprintf("generation %d observed %d, Progressing reason %q", d.Generation, d.Status.ObservedGeneration, progressingReason(d))
	})
	if n := len(replicaSets(t, m, ns)); n != 1 {
		t.Fatalf("paused Deployment has %d ReplicaSets, want 1 (no rollout while paused)", n)
	}
	for _, p := range livePods(t, m.Client, ns, "app=web") {
		if img := p.Spec.Containers[0].Image; img != "img:v1" {
			t.Fatalf("pod %s runs %s while the Deployment is paused", p.Name, img)
		}
	}

	run("rollout", "resume", "deployment/web")
	run("rollout", "status", "deployment/web", "--timeout=90s")
	waitFor(t, "3 pods of img:v2 and no others", 60*time.Second, func() (bool, string) {
		imgs := map[string]int{}
		for _, p := range livePods(t, m.Client, ns, "app=web") {
			imgs[p.Spec.Containers[0].Image]++
		}
		return imgs["img:v2"] == 3 && len(imgs) == 1, fmt.Sprint(imgs)
	})

	run("rollout", "restart", "deployment/web")
	run("rollout", "status", "deployment/web", "--timeout=90s")
	const restartedAt = "kubectl.kubernetes.io/restartedAt"
	waitFor(t, "3 restarted pods and no others", 60*time.Second, func() (bool, string) {
		restarted, other := 0, 0
		for _, p := range livePods(t, m.Client, ns, "app=web") {
			if p.Annotations[restartedAt] != "" && p.Spec.Containers[0].Image == "img:v2" {
				restarted++
			} else {
				other++
			}
		}
		return restarted == 3 && other == 0, fmt.Sprintf("%d restarted, %d other", restarted, other)
	})
	if n := len(replicaSets(t, m, ns)); n != 3 {
		t.Fatalf("after v1, v2 and a restart the Deployment has %d ReplicaSets, want 3", n)
	}
}

// testStatefulSetRollout drives a StatefulSet's rolling update through
// kubectl: rollout status, history (one revision per template) and undo.
func testStatefulSetRollout(t *testing.T, m *master, kubectl string) {
	ns := createNamespace(t, m.Client, "stsroll")
	run := kubectlIn(t, kubectl, m, ns)
	replicas := int32(3)
	set := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas, ServiceName: "db",
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: podTemplate("db", "img:v1", false),
		},
	}
	if _, err := m.Client.AppsV1().StatefulSets(ns).Create(context.Background(), set, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	images := func() (bool, string) {
		imgs := map[string]string{}
		for _, p := range livePods(t, m.Client, ns, "app=db") {
			imgs[p.Name] = p.Spec.Containers[0].Image
		}
		return len(imgs) == 3, fmt.Sprint(imgs)
	}
	want := func(image string) func() (bool, string) {
		return func() (bool, string) {
			_, detail := images()
			return detail == fmt.Sprintf("map[db-0:%s db-1:%s db-2:%s]", image, image, image), detail
		}
	}
	run("rollout", "status", "statefulset/db", "--timeout=90s")
	run("set", "image", "statefulset/db", "c=img:v2")
	run("rollout", "status", "statefulset/db", "--timeout=90s")
	waitFor(t, "db-0..2 on img:v2", 30*time.Second, want("img:v2"))
	if hist := run("rollout", "history", "statefulset/db"); !strings.Contains(hist, "\n1 ") || !strings.Contains(hist, "\n2 ") {
		t.Fatalf("rollout history should list revisions 1 and 2:\n%s", hist)
	}
	run("rollout", "undo", "statefulset/db")
	run("rollout", "status", "statefulset/db", "--timeout=90s")
	waitFor(t, "db-0..2 back on img:v1", 30*time.Second, want("img:v1"))
}

func progressingReason(d *appsv1.Deployment) string {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing {
			return c.Reason
		}
	}
	return ""
}

func replicaSets(t *testing.T, m *master, ns string) []appsv1.ReplicaSet {
	t.Helper()
	list, err := m.Client.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}
