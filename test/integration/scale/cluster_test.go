package scale

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/hoist-project/hoist/internal/testenv"
)

// Short node-lifecycle timings for the eviction scenario: hollow nodes
// renew every second, so 8 s of silence means the node is gone.
const (
	testGracePeriod   = 8 * time.Second
	testMonitorPeriod = time.Second
)

// TestE2EHollowCluster runs one master and 10 hollow nodes and drives the
// scheduler and controllers through the scenarios of issue 4 (each its
// own namespace). The master's node lifecycle controller runs with a short
// grace period (--node-monitor-grace-period) so the eviction scenario is quick.
func TestE2EHollowCluster(t *testing.T) {
	kubectl := testenv.RequireCommand(t, "kubectl", "kubectl")
	m := startMaster(t, "--node-monitor-grace-period", testGracePeriod.String(),
		"--node-monitor-period", testMonitorPeriod.String())
	nodes := startHollow(t, m, "hollow-", 10)

	t.Run("Spread", func(t *testing.T) { testSpread(t, m, nodes.Names()) })
	t.Run("RollingUpdateKeepsAvailability", func(t *testing.T) { testRollingUpdate(t, m) })
	t.Run("KubectlRolloutUndo", func(t *testing.T) { testRolloutUndo(t, m, kubectl) })
	t.Run("KubectlRolloutPauseResumeRestart", func(t *testing.T) { testRolloutPauseResumeRestart(t, m, kubectl) })
	t.Run("KubectlStatefulSetRollout", func(t *testing.T) { testStatefulSetRollout(t, m, kubectl) })
	t.Run("DaemonSetFollowsNodes", func(t *testing.T) { testDaemonSet(t, m) })
	t.Run("KubectlDaemonSetRolloutUndo", func(t *testing.T) { testDaemonSetRolloutUndo(t, m, kubectl) })
	t.Run("NamespaceDeletion", func(t *testing.T) { testNamespaceDeletion(t, m) })
	t.Run("DisruptionBudgetStatus", func(t *testing.T) { testDisruptionBudget(t, m) })
	// Last: it leaves a dead node behind.
	t.Run("HeartbeatLossEvicts", func(t *testing.T) {
		stop := func(name string) {
			if err := nodes.StopHeartbeat(name); err != nil {
				t.Fatal(err)
			}
		}
		testEviction(t, m, stop)
	})
}

func testSpread(t *testing.T, m *master, nodeNames []string) {
	ns := createNamespace(t, m.Client, "spread")
	ctx := context.Background()
	if _, err := m.Client.AppsV1().Deployments(ns).Create(ctx, deployment("web", 50, "img:v1", 1, 0, false), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var perNode map[string]int
	waitFor(t, "50 pods running", 90*time.Second, func() (bool, string) {
		var n int
		n, perNode = running(livePods(t, m.Client, ns, "app=web"))
		return n == 50, fmt.Sprintf("%d running: %v", n, perNode)
	})
	lo, hi := 50, 0
	for _, name := range nodeNames {
		lo, hi = min(lo, perNode[name]), max(hi, perNode[name])
	}
	if hi-lo > 2 {
		t.Fatalf("50 pods over 10 equal nodes: %v (max-min %d, want ≤ 2)", perNode, hi-lo)
	}
	t.Logf("pods per node: %v", perNode)
	if _, err := m.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("namespace %s has no default ServiceAccount: %v", ns, err)
	}
}

func testRollingUpdate(t *testing.T, m *master) {
	const replicas, maxUnavailable, maxSurge = 20, 2, 3
	ns := createNamespace(t, m.Client, "rolling")
	ctx := context.Background()
	deps := m.Client.AppsV1().Deployments(ns)
	if _, err := deps.Create(ctx, deployment("web", replicas, "img:v1", maxSurge, maxUnavailable, false), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first rollout", 90*time.Second, func() (bool, string) { return rolledOut(m.Client, ns, "web") })
	d, err := deps.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := deps.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", "web").String(), ResourceVersion: d.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// maxSurge bounds what the controller asks for: the sum of the
	// ReplicaSets' spec.replicas. (Deployment status.replicas sums the
	// ReplicaSets' statuses, each written by the ReplicaSet controller on
	// its own schedule, so it can briefly count an old set's pods that are
	// already gone.)
	rsList, err := m.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rsWatch, err := m.Client.AppsV1().ReplicaSets(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rsList.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer rsWatch.Stop()
	specs := map[string]int32{}
	for _, rs := range rsList.Items {
		specs[rs.Name] = *rs.Spec.Replicas
	}
	patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"img:v2"}]}}}}`)
	if _, err := deps.Patch(ctx, "web", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(90 * time.Second)
	statuses := 0
	for {
		select {
		case ev, ok := <-rsWatch.ResultChan():
			if !ok {
				t.Fatal("replicaset watch closed during the rollout")
			}
			rs, isRS := ev.Object.(*appsv1.ReplicaSet)
			if !isRS {
				continue
			}
			if ev.Type == watch.Deleted {
				delete(specs, rs.Name)
			} else {
				specs[rs.Name] = *rs.Spec.Replicas
			}
			var sum int32
			for _, n := range specs {
				sum += n
			}
			if sum > replicas+maxSurge {
				t.Fatalf("during the rollout: ReplicaSets ask for %d pods %v > replicas %d + maxSurge %d", sum, specs, replicas, maxSurge)
			}
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("deployment watch closed during the rollout")
			}
			if ev.Type != watch.Modified {
				continue
			}
			d := ev.Object.(*appsv1.Deployment)
			s := d.Status
			statuses++
			if s.AvailableReplicas < replicas-maxUnavailable {
				t.Fatalf("during the rollout: %d available < replicas %d - maxUnavailable %d (status %+v)", s.AvailableReplicas, replicas, maxUnavailable, s)
			}
			if s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == replicas && s.Replicas == replicas && s.AvailableReplicas == replicas {
				t.Logf("rollout done after %d status updates", statuses)
				pods := livePods(t, m.Client, ns, "app=web")
				for _, p := range pods {
					if p.Spec.Containers[0].Image != "img:v2" {
						t.Errorf("pod %s still runs %s after the rollout", p.Name, p.Spec.Containers[0].Image)
					}
				}
				return
			}
		case <-deadline:
			ok, detail := rolledOut(m.Client, ns, "web")
			t.Fatalf("rollout not finished after 90s (done=%v): %s", ok, detail)
		}
	}
}

func testRolloutUndo(t *testing.T, m *master, kubectl string) {
	ns := createNamespace(t, m.Client, "undo")
	run := kubectlIn(t, kubectl, m, ns)
	if _, err := m.Client.AppsV1().Deployments(ns).Create(context.Background(), deployment("web", 4, "img:v1", 1, 1, false), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	run("rollout", "status", "deployment/web", "--timeout=90s")
	run("set", "image", "deployment/web", "c=img:v2")
	run("rollout", "status", "deployment/web", "--timeout=90s")
	run("rollout", "undo", "deployment/web")
	run("rollout", "status", "deployment/web", "--timeout=90s")
	if img := run("get", "deployment/web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"); img != "img:v1" {
		t.Fatalf("after rollout undo the template runs %q, want img:v1", img)
	}
	waitFor(t, "4 pods of img:v1 and none of img:v2", 60*time.Second, func() (bool, string) {
		imgs := map[string]int{}
		for _, p := range livePods(t, m.Client, ns, "app=web") {
			imgs[p.Spec.Containers[0].Image]++
		}
		return imgs["img:v1"] == 4 && len(imgs) == 1, fmt.Sprint(imgs)
	})
	hist := run("rollout", "history", "deployment/web")
	if !strings.Contains(hist, "2 ") || !strings.Contains(hist, "3 ") || strings.Contains(hist, "\n1 ") {
		t.Fatalf("rollout history should list revisions 2 and 3 (1 became 3):\n%s", hist)
	}
}

func testDaemonSet(t *testing.T, m *master) {
	ns := createNamespace(t, m.Client, "ds")
	ctx := context.Background()
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			Template: podTemplate("agent", "img:agent", false),
		},
	}
	if _, err := m.Client.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect := func(what string, want int, absent string) {
		t.Helper()
		waitFor(t, what, 60*time.Second, func() (bool, string) {
			d, err := m.Client.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			n, perNode := running(livePods(t, m.Client, ns, "app=agent"))
			s := d.Status
			detail := fmt.Sprintf("status desired %d available %d; running %d %v", s.DesiredNumberScheduled, s.NumberAvailable, n, perNode)
			ok := s.DesiredNumberScheduled == int32(want) && s.NumberAvailable == int32(want) && n == want && len(perNode) == want && perNode[absent] == 0
			return ok, detail
		})
	}
	nodeCount := func() int {
		l, err := m.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return len(l.Items)
	}
	before := nodeCount()
	expect("one agent per node", before, "")
	joined := startHollow(t, m, "join-", 2)
	expect("agents on the joined nodes", before+2, "")
	leave := func(name string) {
		t.Helper()
		if err := joined.StopHeartbeat(name); err != nil {
			t.Fatal(err)
		}
		if err := m.Client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	leave("join-1")
	expect("no agent on the deleted node join-1", before+1, "join-1")
	// The joined nodes stop with this subtest: take join-0 out as well.
	leave("join-0")
	expect("no agent on the deleted node join-0", before, "join-0")
}

func testNamespaceDeletion(t *testing.T, m *master) {
	ns := createNamespace(t, m.Client, "doomed")
	ctx := context.Background()
	c := m.Client
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, deployment("web", 5, "img:v1", 1, 0, false), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := c.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"a": "b"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "5 pods running and in the Service's endpoints", 60*time.Second, func() (bool, string) {
		n, _ := running(livePods(t, c, ns, "app=web"))
		ep, err := c.CoreV1().Endpoints(ns).Get(ctx, "web", metav1.GetOptions{})
		addrs := 0
		if err == nil {
			for _, s := range ep.Subsets {
				addrs += len(s.Addresses)
			}
		}
		return n == 5 && addrs == 5, fmt.Sprintf("%d running, %d endpoint addresses; pods: %s", n, addrs, describe(livePods(t, c, ns, "app=web")))
	})
	if err := c.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "namespace gone", 90*time.Second, func() (bool, string) {
		_, err := c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	lists := map[string]func() (runtime.Object, error){
		"pods":        func() (runtime.Object, error) { return c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}) },
		"replicasets": func() (runtime.Object, error) { return c.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{}) },
		"deployments": func() (runtime.Object, error) { return c.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{}) },
		"services":    func() (runtime.Object, error) { return c.CoreV1().Services(ns).List(ctx, metav1.ListOptions{}) },
		"configmaps":  func() (runtime.Object, error) { return c.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{}) },
		"endpoints":   func() (runtime.Object, error) { return c.CoreV1().Endpoints(ns).List(ctx, metav1.ListOptions{}) },
	}
	for kind, list := range lists {
		l, err := list()
		if err != nil {
			t.Fatal(err)
		}
		if n := apimeta.LenList(l); n != 0 {
			t.Errorf("deleted namespace %s still holds %d %s", ns, n, kind)
		}
	}
}

func testEviction(t *testing.T, m *master, stopHeartbeat func(string)) {
	ns := createNamespace(t, m.Client, "evict")
	ctx := context.Background()
	if _, err := m.Client.AppsV1().Deployments(ns).Create(ctx, deployment("web", 20, "img:v1", 1, 0, true), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var perNode map[string]int
	waitFor(t, "20 pods running", 60*time.Second, func() (bool, string) {
		var n int
		n, perNode = running(livePods(t, m.Client, ns, "app=web"))
		return n == 20, fmt.Sprintf("%d running", n)
	})
	victim := ""
	for name, k := range perNode {
		if victim == "" || k > perNode[victim] {
			victim = name
		}
	}
	start := time.Now()
	stopHeartbeat(victim)
	waitFor(t, "pods of "+victim+" evicted and running elsewhere", testGracePeriod+60*time.Second, func() (bool, string) {
		pods := livePods(t, m.Client, ns, "app=web")
		n, per := running(pods)
		return n == 20 && per[victim] == 0 && len(pods) == 20, fmt.Sprintf("%d running %v, %d live", n, per, len(pods))
	})
	t.Logf("%d pods of %s running elsewhere %s after its heartbeat stopped (grace period %s)", perNode[victim], victim, time.Since(start).Round(100*time.Millisecond), testGracePeriod)
	node, err := m.Client.CoreV1().Nodes().Get(ctx, victim, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tainted := false
	for _, taint := range node.Spec.Taints {
		tainted = tainted || (taint.Key == corev1.TaintNodeUnreachable && taint.Effect == corev1.TaintEffectNoExecute)
	}
	if nodeReady(node) || !tainted {
		t.Fatalf("dead node %s: ready=%v taints %v; want Unknown with the unreachable NoExecute taint", victim, nodeReady(node), node.Spec.Taints)
	}
}

// describe is a one-line summary of pods for failure messages.
func describe(pods []corev1.Pod) string {
	var parts []string
	for _, p := range pods {
		parts = append(parts, fmt.Sprintf("%s@%s:%s", p.Name, p.Spec.NodeName, p.Status.Phase))
	}
	return strings.Join(parts, " ")
}

func testDisruptionBudget(t *testing.T, m *master) {
	ns := createNamespace(t, m.Client, "pdb")
	ctx := context.Background()
	c := m.Client
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, deployment("web", 4, "img:v1", 1, 0, false), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	three := intstr.FromInt32(3)
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: policyv1.PodDisruptionBudgetSpec{
		MinAvailable: &three, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
	if _, err := c.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	status := func(want string) {
		t.Helper()
		waitFor(t, "budget status "+want, 60*time.Second, func() (bool, string) {
			p, err := c.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			s := p.Status
			got := fmt.Sprintf("expected %d healthy %d desired %d allowed %d", s.ExpectedPods, s.CurrentHealthy, s.DesiredHealthy, s.DisruptionsAllowed)
			return got == want && s.ObservedGeneration == p.Generation, got
		})
	}
	status("expected 4 healthy 4 desired 3 allowed 1")
	pods := livePods(t, c, ns, "app=web")
	ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: pods[0].Name, Namespace: ns}}
	if err := c.PolicyV1().Evictions(ns).Evict(ctx, ev); err != nil {
		t.Fatalf("evict %s: %v", pods[0].Name, err)
	}
	// The replacement runs at once on a hollow node; the evicted pod counts
	// as disrupted until it is gone, then the budget is whole again.
	status("expected 4 healthy 4 desired 3 allowed 1")
	scale := []byte(`{"spec":{"replicas":2}}`)
	if _, err := c.AppsV1().Deployments(ns).Patch(ctx, "web", types.MergePatchType, scale, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	status("expected 2 healthy 2 desired 3 allowed 0")
}
