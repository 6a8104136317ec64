package master

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/hoist-project/hoist/internal/testenv"
)

// drainWorkload puts the four kinds of pods drain treats differently on
// node hst-n1.
const drainWorkload = `apiVersion: v1
kind: Pod
metadata: {name: loner, namespace: drain, labels: {app: loner}}
spec:
  nodeName: hst-n1
  containers: [{name: main, image: busybox:1}]
  volumes: [{name: scratch, emptyDir: {}}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: replicated, namespace: drain}
spec:
  replicas: 1
  selector: {matchLabels: {app: replicated}}
  template:
    metadata: {labels: {app: replicated}}
    spec: {containers: [{name: main, image: testbox:1}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: everywhere, namespace: drain}
spec:
  selector: {matchLabels: {app: everywhere}}
  template:
    metadata: {labels: {app: everywhere}}
    spec: {containers: [{name: main, image: testbox:1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: guarded, namespace: drain, labels: {app: guarded}}
spec:
  containers: [{name: main, image: testbox:1}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: keep-one, namespace: drain}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: guarded}}
`

type syncBuffer = testenv.SyncBuffer

// TestE2EKubectlDrain drains a node holding an unmanaged pod (with an
// emptyDir), a ReplicaSet pod, a DaemonSet pod and a pod protected by a
// PodDisruptionBudget: drain retries the guarded pod while the budget
// allows no disruption and completes once it does.
func TestE2EKubectlDrain(t *testing.T) {
	m := startMaster(t, "", nil)
	k := newKubectl(t, m)
	startFakeNode(t, m, "hst-n1", "10.0.0.11")
	k.run("create", "namespace", "drain")
	file := filepath.Join(t.TempDir(), "drain.yaml")
	if err := os.WriteFile(file, []byte(drainWorkload), 0o600); err != nil {
		t.Fatal(err)
	}
	k.run("apply", "-f", file)
	for _, app := range []string{"loner", "replicated", "everywhere", "guarded"} {
		podsRunning(t, k, "drain", "app="+app, 1)
	}

	// The eviction API refuses the guarded pod, naming pod and budget.
	client, err := kubernetes.NewForConfig(m.Rest)
	if err != nil {
		t.Fatal(err)
	}
	err = client.PolicyV1().Evictions("drain").Evict(context.Background(),
		&policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "guarded", Namespace: "drain"}})
	var se *apierrors.StatusError
	if !apierrors.IsTooManyRequests(err) || !errors.As(err, &se) || len(se.ErrStatus.Details.Causes) == 0 {
		t.Fatalf("evicting the guarded pod: want 429 with a cause, got %v", err)
	}
	wantContains(t, "eviction refusal", se.ErrStatus.Message+" "+se.ErrStatus.Details.Causes[0].Message,
		"Cannot evict pod as it would violate the pod's disruption budget.", "keep-one", "guarded")
	wantContains(t, "get pdb", k.run("-n", "drain", "get", "pdb", "keep-one"), "MIN AVAILABLE", "keep-one 1 N/A 0")

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out syncBuffer
	drain := k.cmd(ctx, "drain", "hst-n1", "--ignore-daemonsets", "--delete-emptydir-data", "--force", "--timeout=80s")
	drain.Stdout, drain.Stderr = &out, &out
	if err := drain.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- drain.Wait() }()
	waitFor(t, "drain to retry the guarded pod", func() bool {
		return strings.Contains(out.String(), `error when evicting pods/"guarded" -n "drain" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.`)
	})
	waitFor(t, "the unmanaged and the ReplicaSet pod to be evicted", func() bool {
		return strings.TrimSpace(k.run("-n", "drain", "get", "pods", "--field-selector", "spec.nodeName=hst-n1", "-l", "app in (loner,replicated)", "-o", "name")) == ""
	})
	select {
	case err := <-done:
		t.Fatalf("drain ended while the budget forbids evicting guarded: %v\n%s", err, out.String())
	default:
	}
	if got := k.run("-n", "drain", "get", "pod", "guarded", "-o", "jsonpath={.status.phase}"); got != "Running" {
		t.Fatalf("guarded pod while the budget holds: %q", got)
	}
	wantContains(t, "cordoned", k.run("get", "node", "hst-n1"), "Ready,SchedulingDisabled")

	// Relaxing the budget lets the next retry through.
	k.run("-n", "drain", "patch", "pdb", "keep-one", "--type=merge", "-p", `{"spec":{"minAvailable":0}}`)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("drain: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("drain did not finish after the budget allowed it:\n%s", out.String())
	}
	wantContains(t, "drain", out.String(), "node/hst-n1 cordoned", "ignoring DaemonSet-managed Pods: drain/everywhere-",
		"deleting Pods that declare no controller: drain/guarded, drain/loner", "evicting pod drain/guarded", "pod/guarded evicted", "node/hst-n1 drained")
	if got := k.run("-n", "drain", "get", "pods", "--field-selector", "spec.nodeName=hst-n1", "-o", "name"); !strings.HasPrefix(strings.TrimSpace(got), "pod/everywhere-") || strings.Count(got, "pod/") != 1 {
		t.Fatalf("pods left on the drained node: %q", got)
	}
}
