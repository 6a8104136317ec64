package nodelifecycle

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/fakeapi"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func readyNode(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.NewTime(t0)}}}}
}

func lease(node string, at time.Time) *coordinationv1.Lease {
	mt := metav1.NewMicroTime(at)
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: NodeLeaseNamespace, Name: node},
		Spec: coordinationv1.LeaseSpec{RenewTime: &mt}}
}

func podOn(name, node string, tols ...corev1.Toleration) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID(name)},
		Spec:       corev1.PodSpec{NodeName: node, Tolerations: tols},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

func tolerate(key string, seconds *int64) corev1.Toleration {
	return corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: seconds}
}

type env struct {
	t      *testing.T
	client kubernetes.Interface
	c      *Controller
	now    time.Time
}

func setup(t *testing.T) *env {
	ten := int64(10)
	client := fakeapi.New(readyNode("n1"), readyNode("n2"), lease("n1", t0), lease("n2", t0),
		podOn("plain", "n1"), podOn("short", "n1", tolerate(corev1.TaintNodeUnreachable, &ten)),
		podOn("forever", "n1", tolerate(corev1.TaintNodeUnreachable, nil)), podOn("other", "n2"))
	e := &env{t: t, client: client, now: t0}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	factory := informers.NewSharedInformerFactory(client, 0)
	e.c = New(client, factory, Config{Now: func() time.Time { return e.now }})
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return e
}

// tickAt runs one pass at t0+offset and waits until the informer cache
// reflects the API state, so the next pass sees its own writes.
func (e *env) tickAt(offset time.Duration) {
	e.t.Helper()
	e.now = t0.Add(offset)
	if err := e.c.Tick(context.Background()); err != nil {
		e.t.Fatalf("Tick at +%v: %v", offset, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n1, _ := e.client.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
		cached, _ := e.c.nodes.Get("n1")
		pods, _ := e.client.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
		if cached != nil && equality.Semantic.DeepEqual(n1, cached) && len(e.c.podIndex.List()) == len(pods.Items) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatal("informer cache never caught up")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) node(name string) *corev1.Node {
	n, err := e.client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) pods() map[string]*corev1.Pod {
	l, _ := e.client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	out := map[string]*corev1.Pod{}
	for i := range l.Items {
		out[l.Items[i].Name] = &l.Items[i]
	}
	return out
}

func (e *env) renew(node string, offset time.Duration) {
	e.t.Helper()
	if _, err := e.client.CoordinationV1().Leases(NodeLeaseNamespace).Update(context.Background(), lease(node, t0.Add(offset)), metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if l, err := e.c.leases.Leases(NodeLeaseNamespace).Get(node); err == nil && l.Spec.RenewTime.Time.Equal(t0.Add(offset)) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatal("lease update never reached the cache")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func taintKeys(n *corev1.Node) map[string]bool {
	out := map[string]bool{}
	for _, t := range n.Spec.Taints {
		out[t.Key+":"+string(t.Effect)] = true
	}
	return out
}

func TestSilentNodeGoesUnknownTaintedAndEvicted(t *testing.T) {
	e := setup(t)
	e.tickAt(0)
	for offset := 10 * time.Second; offset <= 40*time.Second; offset += 10 * time.Second {
		e.renew("n2", offset) // n2 keeps renewing; n1 is silent
		e.tickAt(offset)
	}
	if s := readyStatus(e.node("n1")); s != corev1.ConditionTrue {
		t.Fatalf("n1 went %s within the 40s grace period", s)
	}
	e.renew("n2", 41*time.Second)
	e.tickAt(41 * time.Second)
	n1 := e.node("n1")
	if s := readyStatus(n1); s != corev1.ConditionUnknown {
		t.Fatalf("n1 Ready = %s after 41s of silence, want Unknown", s)
	}
	if k := taintKeys(n1); !k[corev1.TaintNodeUnreachable+":NoExecute"] || !k[corev1.TaintNodeUnreachable+":NoSchedule"] || len(k) != 2 {
		t.Fatalf("n1 taints = %v", k)
	}
	if readyStatus(e.node("n2")) != corev1.ConditionTrue || len(e.node("n2").Spec.Taints) != 0 {
		t.Fatal("renewing node n2 was touched")
	}
	pods := e.pods()
	if c := pods["plain"].Status.Conditions[0]; c.Status != corev1.ConditionFalse {
		t.Fatalf("pod on unreachable node still Ready: %+v", c)
	}
	if len(pods) != 4 {
		t.Fatalf("pods evicted before any toleration expired: %d left", len(pods))
	}

	e.tickAt(41*time.Second + 10*time.Second)
	pods = e.pods()
	if _, ok := pods["short"]; ok || len(pods) != 3 {
		t.Fatalf("pod with tolerationSeconds=10 not evicted at +10s: %v", keys(pods))
	}
	e.tickAt(41*time.Second + 299*time.Second)
	if _, ok := e.pods()["plain"]; !ok {
		t.Fatal("pod evicted before the default 300s toleration")
	}
	e.tickAt(41*time.Second + 300*time.Second)
	pods = e.pods()
	if _, ok := pods["plain"]; ok {
		t.Fatal("pod without toleration not evicted after 300s")
	}
	if _, ok := pods["forever"]; !ok {
		t.Fatal("pod tolerating forever was evicted")
	}
	if _, ok := pods["other"]; !ok {
		t.Fatal("pod on the healthy node was evicted")
	}

	// The kubelet comes back and reports Ready: taints go away.
	n1 = e.node("n1")
	n1.Status.Conditions[0].Status = corev1.ConditionTrue
	n1.Status.Conditions[0].LastHeartbeatTime = metav1.NewTime(t0.Add(400 * time.Second))
	if _, err := e.client.CoreV1().Nodes().UpdateStatus(context.Background(), n1, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.renew("n1", 400*time.Second)
	e.tickAt(400 * time.Second)
	if k := taintKeys(e.node("n1")); len(k) != 0 {
		t.Fatalf("taints after recovery = %v", k)
	}
}

func keys(m map[string]*corev1.Pod) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestDesiredTaintsAndEvictAt(t *testing.T) {
	n := readyNode("n")
	n.Status.Conditions[0].Status = corev1.ConditionFalse
	taints, changed := DesiredTaints(n, t0)
	if !changed || len(taints) != 2 || taints[0].Key != corev1.TaintNodeNotReady || taints[1].TimeAdded == nil {
		t.Fatalf("NotReady taints = %+v", taints)
	}
	n.Spec.Taints = append(taints, corev1.Taint{Key: "user", Effect: corev1.TaintEffectNoSchedule})
	if _, changed := DesiredTaints(n, t0.Add(time.Hour)); changed {
		t.Fatal("stable NotReady node re-tainted (timeAdded must be kept)")
	}
	n.Status.Conditions[0].Status = corev1.ConditionTrue
	if taints, _ := DesiredTaints(n, t0); len(taints) != 1 || taints[0].Key != "user" {
		t.Fatalf("ready node kept lifecycle taints or lost user taint: %+v", taints)
	}
	added := metav1.NewTime(t0)
	noExec := []corev1.Taint{{Key: "custom", Effect: corev1.TaintEffectNoExecute, TimeAdded: &added}}
	if at, ok := EvictAt(podOn("p", "n"), noExec, 300*time.Second); !ok || !at.Equal(t0) {
		t.Fatalf("untolerated custom NoExecute taint: at %v ok %v, want immediate", at, ok)
	}
	neg := int64(-5)
	p := podOn("p", "n", corev1.Toleration{Operator: corev1.TolerationOpExists, TolerationSeconds: &neg})
	if at, ok := EvictAt(p, noExec, 300*time.Second); !ok || !at.Equal(t0) {
		t.Fatalf("negative tolerationSeconds: at %v ok %v", at, ok)
	}
}
