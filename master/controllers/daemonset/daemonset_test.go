package daemonset

import (
	"context"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrltest"
	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
	"github.com/hoist-project/hoist/master/controllers/fakeapi"
)

func daemonSet() *appsv1.DaemonSet {
	l := map[string]string{"app": "agent"}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "agent", UID: "ds-uid"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l}, Spec: corev1.PodSpec{
				NodeSelector: map[string]string{"role": "worker"},
				Containers:   []corev1.Container{{Name: "c", Image: "v1"}}}},
		},
	}
}

func node(name string, worker bool, taints ...corev1.Taint) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}, Spec: corev1.NodeSpec{Taints: taints}}
	if worker {
		n.Labels["role"] = "worker"
	}
	return n
}

func TestShouldRun(t *testing.T) {
	tmpl := &daemonSet().Spec.Template
	cases := []struct {
		node *corev1.Node
		want bool
	}{
		{node("w", true), true},
		{node("m", false), false},
		{node("t", true, corev1.Taint{Key: "dedicated", Effect: corev1.TaintEffectNoSchedule}), false},
		{node("p", true, corev1.Taint{Key: "x", Effect: corev1.TaintEffectPreferNoSchedule}), true},
		{node("nr", true, corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}), true},
		{node("cordon", true, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}), true},
	}
	for _, c := range cases {
		if got := ShouldRun(tmpl, c.node); got != c.want {
			t.Errorf("node %s: ShouldRun = %v, want %v", c.node.Name, got, c.want)
		}
	}
}

func dpod(name, node, hash string, available bool) *corev1.Pod {
	st := corev1.ConditionFalse
	if available {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name), Labels: map[string]string{HashLabel: hash}},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
}

func names(pods []*corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out
}

func TestDecideRollingUpdate(t *testing.T) {
	ds := daemonSet()
	nodes := []*corev1.Node{node("a", true), node("b", true), node("c", true)}
	now := time.Now()
	all := map[string][]*corev1.Pod{"a": {dpod("pa", "a", "old", true)}, "b": {dpod("pb", "b", "old", true)}, "c": {dpod("pc", "c", "old", true)}}
	p := Decide(ds, nodes, all, "new", true, now)
	if len(p.Delete) != 1 || len(p.Create) != 0 {
		t.Fatalf("maxUnavailable=1: delete %v create %v, want one deletion", names(p.Delete), p.Create)
	}
	// An old pod that is unavailable anyway is replaced first, and uses the budget.
	all["b"][0] = dpod("pb", "b", "old", false)
	if p := Decide(ds, nodes, all, "new", true, now); len(p.Delete) != 1 || p.Delete[0].Name != "pb" {
		t.Fatalf("delete %v, want [pb]", names(p.Delete))
	}
	// A missing pod counts as unavailable: nothing more may go.
	delete(all, "b")
	if p := Decide(ds, nodes, all, "new", true, now); len(p.Delete) != 0 || len(p.Create) != 1 || p.Create[0] != "b" {
		t.Fatalf("delete %v create %v, want only create b", names(p.Delete), p.Create)
	}
	two := intstr.FromString("50%")
	ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &two}
	all["b"] = []*corev1.Pod{dpod("pb", "b", "new", true)}
	if p := Decide(ds, nodes, all, "new", true, now); len(p.Delete) != 2 {
		t.Fatalf("maxUnavailable=50%% of 3 rounds up to 2: delete %v", names(p.Delete))
	}
	ds.Spec.UpdateStrategy.Type = appsv1.OnDeleteDaemonSetStrategyType
	if p := Decide(ds, nodes, all, "new", true, now); len(p.Delete) != 0 || p.Status.UpdatedNumberScheduled != 1 {
		t.Fatalf("OnDelete deleted %v / status %+v", names(p.Delete), p.Status)
	}
}

func TestDecideDuplicatesMisscheduledAndGoneNodes(t *testing.T) {
	ds := daemonSet()
	old := dpod("first", "a", "h", true)
	old.CreationTimestamp = metav1.NewTime(time.Unix(1, 0))
	dup := dpod("second", "a", "h", true)
	dup.CreationTimestamp = metav1.NewTime(time.Unix(2, 0))
	failed := dpod("failed", "b", "h", false)
	failed.Status.Phase = corev1.PodFailed
	pods := map[string][]*corev1.Pod{
		"a": {dup, old}, "b": {failed}, "m": {dpod("mis", "m", "h", true)}, "gone": {dpod("orphan", "gone", "h", true)},
	}
	p := Decide(ds, []*corev1.Node{node("a", true), node("b", true), node("m", false)}, pods, "h", true, time.Now())
	if got := names(p.Delete); len(got) != 4 || got[0] != "failed" || got[1] != "mis" || got[2] != "orphan" || got[3] != "second" {
		t.Fatalf("delete = %v", got)
	}
	if len(p.Create) != 1 || p.Create[0] != "b" || p.Status.DesiredNumberScheduled != 2 || p.Status.NumberMisscheduled != 1 {
		t.Fatalf("create %v status %+v", p.Create, p.Status)
	}
}

func podsByNode(t *testing.T, client kubernetes.Interface) map[string]string {
	l, err := client.CoreV1().Pods("kube-system").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for i := range l.Items {
		p := &l.Items[i]
		if p.DeletionTimestamp == nil {
			out[podNode(p)] += p.Spec.Containers[0].Image
		}
	}
	return out
}

func waitPods(t *testing.T, client kubernetes.Interface, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := podsByNode(t, client)
		same := len(got) == len(want)
		for k, v := range want {
			same = same && got[k] == v
		}
		if same {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pods by node = %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestControllerFollowsNodes(t *testing.T) {
	client := fakeapi.New(daemonSet(), node("w1", true), node("m1", false),
		node("t1", true, corev1.Taint{Key: "dedicated", Effect: corev1.TaintEffectNoSchedule}))
	ctx := ctrltest.Start(t, client, func(f informers.SharedInformerFactory) ctrltest.Runner { return New(client, f, Config{}) })
	waitPods(t, client, map[string]string{"w1": "v1"})
	pods, _ := client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
	p := pods.Items[0]
	if p.Spec.NodeName != "" || p.Labels[HashLabel] == "" || len(p.Spec.Tolerations) < 6 {
		t.Fatalf("daemon pod must be pinned by affinity, carry the hash and default tolerations: %+v", p.Spec)
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, node("w2", true), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, client, map[string]string{"w1": "v1", "w2": "v1"})
	if err := client.CoreV1().Nodes().Delete(ctx, "w1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, client, map[string]string{"w2": "v1"})
	ds, _ := client.AppsV1().DaemonSets("kube-system").Get(ctx, "agent", metav1.GetOptions{})
	ds.Spec.Template.Spec.Containers[0].Image = "v2"
	if _, err := client.AppsV1().DaemonSets("kube-system").Update(ctx, ds, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, client, map[string]string{"w2": "v2"})

	// One ControllerRevision per template, numbered in order, named by
	// the hash the pods carry.
	hash := ctrlutil.TemplateHash(&ds.Spec.Template, nil)
	ctrltest.WaitFor(t, "revisions 1 (v1) and 2 (v2)", func() bool {
		l, err := client.AppsV1().ControllerRevisions("kube-system").List(ctx, metav1.ListOptions{})
		if err != nil || len(l.Items) != 2 {
			return false
		}
		cur := l.Items[0]
		if cur.Revision != 2 {
			cur = l.Items[1]
		}
		return cur.Revision == 2 && cur.Name == "agent-"+hash && l.Items[0].Revision+l.Items[1].Revision == 3
	})
	pods, _ = client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Labels[HashLabel] != hash {
			t.Errorf("pod %s labelled %s=%q, want the current revision's hash %q", p.Name, HashLabel, p.Labels[HashLabel], hash)
		}
	}
}
