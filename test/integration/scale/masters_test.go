package scale

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/hoist-project/hoist/master/storage/storagetest"
)

// TestE2EMasterKilledMidRollout kills `hoist master` (SIGKILL, embedded
// etcd included) in the middle of a rolling update and starts it again on
// the same data dir: the rollout finishes with exactly the desired pods.
func TestE2EMasterKilledMidRollout(t *testing.T) {
	const replicas = 20
	m := startMaster(t)
	startHollow(t, m, "hollow-", 5)
	ns := createNamespace(t, m.Client, "restart")
	ctx := context.Background()
	if _, err := m.Client.AppsV1().Deployments(ns).Create(ctx, deployment("web", replicas, "img:v1", 4, 0, false), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first rollout", 90*time.Second, func() (bool, string) { return rolledOut(m.Client, ns, "web") })
	// Hollow pods are ready at once: minReadySeconds makes the update
	// take five steps of a second, so that it can be interrupted.
	patch := []byte(`{"spec":{"minReadySeconds":1,"template":{"spec":{"containers":[{"name":"c","image":"img:v2"}]}}}}`)
	if _, err := m.Client.AppsV1().Deployments(ns).Patch(ctx, "web", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	var updated int32
	waitFor(t, "rollout under way", 60*time.Second, func() (bool, string) {
		d, err := m.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		updated = d.Status.UpdatedReplicas
		return d.Status.ObservedGeneration >= d.Generation && updated > 0, fmt.Sprintf("%d updated", updated)
	})
	if updated >= replicas {
		t.Fatalf("the rollout finished before the master could be killed (%d updated); slow it down", updated)
	}
	m.kill9()
	t.Logf("killed the master with %d of %d pods updated", updated, replicas)
	restart := time.Now()
	m.start()
	t.Logf("master serving again after %s", time.Since(restart).Round(time.Millisecond))
	waitFor(t, "rollout finished after the restart", 120*time.Second, func() (bool, string) { return rolledOut(m.Client, ns, "web") })
	t.Logf("rollout finished %s after the restart", time.Since(restart).Round(time.Millisecond))
	waitFor(t, "exactly 20 pods, all img:v2", 30*time.Second, func() (bool, string) {
		all, err := m.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		images := map[string]int{}
		for _, p := range all.Items {
			images[p.Spec.Containers[0].Image]++
		}
		return len(all.Items) == replicas && images["img:v2"] == replicas, fmt.Sprint(images)
	})
	rsets, err := m.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rsets.Items) != 2 {
		t.Fatalf("%d ReplicaSets after the rollout, want 2 (old and new)", len(rsets.Items))
	}
}

// leaderLine is the line controllers.go logs when a master starts leading.
var leaderLine = regexp.MustCompile(`started leading.*lease=(\S+) identity=(\S+)`)

// leads lists the leases a master's log says it led, with the identity.
func leads(m *master) map[string]string {
	out := map[string]string{}
	for _, match := range leaderLine.FindAllStringSubmatch(m.Log(), -1) {
		out[match[1]] = match[2]
	}
	return out
}

func holder(t *testing.T, c kubernetes.Interface, lease string) string {
	l, err := c.CoordinationV1().Leases("kube-system").Get(context.Background(), lease, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// bindings is how many pods/binding requests a master's API served.
func bindings(t *testing.T, m *master) int {
	body, err := m.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	n := 0
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "apiserver_request_total{") && strings.Contains(line, `resource="pods"`) &&
			strings.Contains(line, `subresource="binding"`) && strings.Contains(line, `code="201"`) {
			var v float64
			fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v)
			n += int(v)
		}
	}
	return n
}

// TestE2ETwoMastersOneLeader runs two masters on one etcd: each of the
// scheduler and controller-manager Leases is held by one of them, only
// that one acts (pods/binding requests reach only the scheduler leader's
// API, a Deployment gets exactly its replicas), and when the leader is
// killed the other takes over.
func TestE2ETwoMastersOneLeader(t *testing.T) {
	etcd := storagetest.External(t)
	a := startMaster(t, "--etcd-servers", etcd)
	b := startMaster(t, "--etcd-servers", etcd)
	var leader, follower *master
	waitFor(t, "both leases held", 60*time.Second, func() (bool, string) {
		s, cm := holder(t, a.Client, "kube-scheduler"), holder(t, a.Client, "kube-controller-manager")
		return s != "" && cm != "", fmt.Sprintf("scheduler %q, controller manager %q", s, cm)
	})
	waitFor(t, "the scheduler leader's log names it", 30*time.Second, func() (bool, string) {
		h := holder(t, a.Client, "kube-scheduler")
		la, lb := leads(a)["kube-scheduler"], leads(b)["kube-scheduler"]
		switch {
		case la == h && lb == "":
			leader, follower = a, b
		case lb == h && la == "":
			leader, follower = b, a
		default:
			return false, fmt.Sprintf("holder %q, master A led %q, master B led %q", h, la, lb)
		}
		return true, ""
	})
	for _, lease := range []string{"kube-scheduler", "kube-controller-manager"} {
		la, lb := leads(a)[lease], leads(b)[lease]
		if la != "" && lb != "" {
			t.Fatalf("both masters led %s: %s and %s", lease, la, lb)
		}
	}
	// Nodes and clients talk to the follower, which survives.
	startHollow(t, follower, "hollow-", 4)
	c := follower.Client
	ns := createNamespace(t, c, "leader")
	ctx := context.Background()
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, deployment("web", 20, "img:v1", 1, 0, false), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "20 pods running", 60*time.Second, func() (bool, string) {
		n, _ := running(livePods(t, c, ns, "app=web"))
		return n == 20, fmt.Sprintf("%d running", n)
	})
	if nb := bindings(t, follower); nb != 0 {
		t.Fatalf("the follower's API served %d bindings: its scheduler acted without the lease", nb)
	}
	if nb := bindings(t, leader); nb < 20 {
		t.Fatalf("the leader's API served %d bindings, want at least 20", nb)
	}

	leader.kill9()
	waitFor(t, "the follower takes both leases", 60*time.Second, func() (bool, string) {
		l := leads(follower)
		ok := l["kube-scheduler"] != "" && l["kube-controller-manager"] != "" &&
			holder(t, c, "kube-scheduler") == l["kube-scheduler"] && holder(t, c, "kube-controller-manager") == l["kube-controller-manager"]
		return ok, fmt.Sprintf("follower led %v", l)
	})
	scale := []byte(`{"spec":{"replicas":30}}`)
	if _, err := c.AppsV1().Deployments(ns).Patch(ctx, "web", types.MergePatchType, scale, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "30 pods running after the takeover", 60*time.Second, func() (bool, string) {
		n, _ := running(livePods(t, c, ns, "app=web"))
		all, _ := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return n == 30 && len(all.Items) == 30, fmt.Sprintf("%d running, %d pods", n, len(all.Items))
	})
	if nb := bindings(t, follower); nb < 10 {
		t.Fatalf("after the takeover the follower's API served %d bindings, want at least 10", nb)
	}
}
