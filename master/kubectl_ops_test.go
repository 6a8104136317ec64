package master

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// kubeEditor is the KUBE_EDITOR the edit tests use: it rewrites the file
// kubectl hands it with sed, like an operator changing one line.
const kubeEditor = `#!/bin/sh
exec sed -i -e "$HST_EDIT" "$1"
`

// edit runs kubectl edit with the sed expression expr as the editor.
func (k *kubectl) edit(expr string, args ...string) (string, error) {
	k.t.Helper()
	script := filepath.Join(k.t.TempDir(), "editor.sh")
	if err := os.WriteFile(script, []byte(kubeEditor), 0o700); err != nil {
		k.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := k.cmd(ctx, append([]string{"edit"}, args...)...)
	c.Env = append(os.Environ(), "KUBE_EDITOR="+script, "HST_EDIT="+expr)
	out, err := c.CombinedOutput()
	return string(out), err
}

// podsRunning waits until n pods with the selector run in ns.
func podsRunning(t *testing.T, k *kubectl, ns, selector string, n int) {
	t.Helper()
	waitFor(t, selector+" pods running", func() bool {
		out := k.run("-n", ns, "get", "pods", "-l", selector, "--field-selector", "status.phase=Running", "-o", "name")
		return len(strings.Fields(out)) == n
	})
}

// TestE2EKubectlNodeAndWorkloadOps drives describe, edit, scale, expose,
// taint, cordon and uncordon against a master with one fake node.
func TestE2EKubectlNodeAndWorkloadOps(t *testing.T) {
	m := startMaster(t, "", nil)
	k := newKubectl(t, m)
	startFakeNode(t, m, "hst-n1", "10.0.0.11")
	k.run("create", "namespace", "ops")
	wantContains(t, "create deployment", k.run("-n", "ops", "create", "deployment", "web", "--image=testbox:1", "--port=8080"),
		"deployment.apps/web created")
	podsRunning(t, k, "ops", "app=web", 1)

	// describe: pods with the scheduler's event, nodes with the agent's.
	pod := strings.TrimPrefix(strings.TrimSpace(k.run("-n", "ops", "get", "pods", "-l", "app=web", "-o", "name")), "pod/")
	waitFor(t, "the Scheduled event in describe pod", func() bool {
		return strings.Contains(k.run("-n", "ops", "describe", "pod", pod), "Successfully assigned ops/"+pod+" to hst-n1")
	})
	wantContains(t, "describe pod", k.run("-n", "ops", "describe", "pod", pod),
		"Node:             hst-n1/10.0.0.11", "Status:           Running", "Controlled By:  ReplicaSet/web-", "Events:", "Scheduled")
	wantContains(t, "describe node", k.run("describe", "node", "hst-n1"),
		"Name:               hst-n1", "Ready            True", "Non-terminated Pods:", pod, "Starting fake node agent.")

	// expose, then describe service with its endpoints and events.
	wantContains(t, "expose", k.run("-n", "ops", "expose", "deployment", "web", "--port=80", "--target-port=8080"), "service/web exposed")
	client, err := kubernetes.NewForConfig(m.Rest)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := client.CoreV1().Services("ops").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	_, err = client.CoreV1().Events("ops").Create(context.Background(), &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: "web-"},
		InvolvedObject: corev1.ObjectReference{Kind: "Service", Namespace: "ops", Name: "web", UID: svc.UID, APIVersion: "v1"},
		Reason:         "Checked", Message: "service looked at by the test", Type: corev1.EventTypeNormal,
		Source: corev1.EventSource{Component: "hoist-test"}, FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "endpoints in describe service", func() bool {
		out := k.run("-n", "ops", "describe", "service", "web")
		return strings.Contains(squash(out), "Endpoints: 10.244.")
	})
	wantContains(t, "describe service", k.run("-n", "ops", "describe", "service", "web"),
		"Selector:          app=web", "TargetPort:        8080/TCP", "IP:                10.", "service looked at by the test")

	// scale, with and without a precondition.
	wantContains(t, "scale", k.run("-n", "ops", "scale", "deployment", "web", "--replicas=3"), "deployment.apps/web scaled")
	podsRunning(t, k, "ops", "app=web", 3)
	if out, err := k.try("-n", "ops", "scale", "deployment", "web", "--current-replicas=2", "--replicas=1"); err == nil ||
		!strings.Contains(out, "Expected replicas to be 2, was 3") {
		t.Fatalf("scale with a wrong --current-replicas: %v %s", err, out)
	}
	k.run("-n", "ops", "scale", "deployment", "web", "--current-replicas=3", "--replicas=2")
	podsRunning(t, k, "ops", "app=web", 2)

	// edit through KUBE_EDITOR; a no-op edit is reported as such, and an
	// invalid edit is refused with the server's field error.
	wantContains(t, "edit", mustOK(t)(k.edit("s/replicas: 2/replicas: 1/", "-n", "ops", "deployment/web")), "deployment.apps/web edited")
	if out := k.run("-n", "ops", "get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"); out != "1" {
		t.Fatalf("replicas after edit: %q", out)
	}
	wantContains(t, "no-op edit", mustOK(t)(k.edit("s/nothing-matches-this//", "-n", "ops", "deployment/web")), "Edit cancelled, no changes made.")
	out, err := k.edit("s/image: testbox:1/image: \"\"/", "-n", "ops", "deployment/web")
	if err == nil || !strings.Contains(out, `deployments.apps "web" is invalid`) {
		t.Fatalf("invalid edit: %v %s", err, out)
	}
	// kubectl keeps the rejected edit with the server's field errors on top.
	_, kept, _ := strings.Cut(out, "A copy of your changes has been stored to \"")
	kept, _, _ = strings.Cut(kept, "\"")
	b, err := os.ReadFile(kept)
	if err != nil {
		t.Fatalf("the rejected edit's copy: %v (kubectl said %s)", err, out)
	}
	os.Remove(kept)
	wantContains(t, "rejected edit", string(b), "# * spec.template.spec.containers[0].image: Required value")

	// taint, cordon, uncordon.
	wantContains(t, "taint", k.run("taint", "nodes", "hst-n1", "dedicated=gold:NoSchedule"), "node/hst-n1 tainted")
	wantContains(t, "taints", k.run("get", "node", "hst-n1", "-o", "jsonpath={.spec.taints}"), `"key":"dedicated"`, `"effect":"NoSchedule"`)
	wantContains(t, "describe tainted node", k.run("describe", "node", "hst-n1"), "Taints:             dedicated=gold:NoSchedule")
	wantContains(t, "untaint", k.run("taint", "nodes", "hst-n1", "dedicated=gold:NoSchedule-"), "node/hst-n1 untainted")
	if out := k.run("get", "node", "hst-n1", "-o", "jsonpath={.spec.taints}"); strings.Contains(out, "dedicated") {
		t.Fatalf("taint still there: %s", out)
	}
	wantContains(t, "cordon", k.run("cordon", "hst-n1"), "node/hst-n1 cordoned")
	wantContains(t, "cordoned node", k.run("get", "node", "hst-n1"), "Ready,SchedulingDisabled")
	// A new replica cannot be placed on a cordoned node.
	k.run("-n", "ops", "scale", "deployment", "web", "--replicas=2")
	waitFor(t, "the unschedulable pod's FailedScheduling event", func() bool {
		return strings.Contains(k.run("-n", "ops", "get", "events", "--field-selector", "reason=FailedScheduling"), "unschedulable")
	})
	wantContains(t, "uncordon", k.run("uncordon", "hst-n1"), "node/hst-n1 uncordoned")
	podsRunning(t, k, "ops", "app=web", 2)
	if out := k.run("get", "node", "hst-n1"); strings.Contains(out, "SchedulingDisabled") {
		t.Fatalf("node still cordoned: %s", out)
	}
}

// mustOK fails the test when a (output, error) pair carries an error.
func mustOK(t *testing.T) func(string, error) string {
	return func(out string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return out
	}
}

// TestE2EKubectlDeleteCascade deletes Deployments with each --cascade mode;
// the garbage collector in the master does the rest.
func TestE2EKubectlDeleteCascade(t *testing.T) {
	k := newKubectl(t, startMaster(t, "", nil))
	k.run("create", "namespace", "gc")
	for _, d := range []string{"bg", "fg", "orphan"} {
		k.run("-n", "gc", "create", "deployment", d, "--image=testbox:1", "--replicas=2")
	}
	for _, d := range []string{"bg", "fg", "orphan"} {
		waitFor(t, d+"'s pods", func() bool {
			return len(strings.Fields(k.run("-n", "gc", "get", "pods", "-l", "app="+d, "-o", "name"))) == 2
		})
	}
	gone := func(sel string) bool {
		return strings.TrimSpace(k.run("-n", "gc", "get", "rs,pods", "-l", sel, "-o", "name")) == ""
	}

	wantContains(t, "foreground", k.run("-n", "gc", "delete", "deployment", "fg", "--cascade=foreground"), `deployment.apps "fg" deleted`)
	// Foreground: kubectl waited for the Deployment, which goes only after
	// its dependents.
	if !gone("app=fg") {
		t.Fatalf("foreground deletion left dependents: %s", k.run("-n", "gc", "get", "rs,pods", "-l", "app=fg"))
	}

	wantContains(t, "background", k.run("-n", "gc", "delete", "deployment", "bg", "--cascade=background"), `deployment.apps "bg" deleted`)
	waitFor(t, "the garbage collector to remove bg's ReplicaSet and pods", func() bool { return gone("app=bg") })

	wantContains(t, "orphan", k.run("-n", "gc", "delete", "deployment", "orphan", "--cascade=orphan"), `deployment.apps "orphan" deleted`)
	rs := strings.Fields(k.run("-n", "gc", "get", "rs", "-l", "app=orphan", "-o", "name"))
	if len(rs) != 1 {
		t.Fatalf("orphaned ReplicaSet: %q", rs)
	}
	if refs := k.run("-n", "gc", "get", rs[0], "-o", "jsonpath={.metadata.ownerReferences}"); refs != "" {
		t.Fatalf("orphaned ReplicaSet still has owners: %s", refs)
	}
	if n := len(strings.Fields(k.run("-n", "gc", "get", "pods", "-l", "app=orphan", "-o", "name"))); n != 2 {
		t.Fatalf("orphan deletion took pods: %d left", n)
	}
	// The orphaned ReplicaSet is a working owner of its own: deleting it
	// by default (background) takes its pods.
	k.run("-n", "gc", "delete", rs[0])
	waitFor(t, "the orphaned ReplicaSet's pods to go with it", func() bool { return gone("app=orphan") })
}
