package master

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const manifest = `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
  labels: {app: web}
data:
  mode: fast
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: testbox:1
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata:
  name: solo
  namespace: shop
  labels: {app: solo}
spec:
  containers:
  - name: main
    image: busybox:1
`

func TestE2EKubectlAgainstMaster(t *testing.T) {
	k := newKubectl(t, startMaster(t, "", nil))

	wantContains(t, "version", k.run("version"), "Server Version: v1.32")
	wantContains(t, "api-resources", k.run("api-resources"),
		"pods", "po", "deployments", "deploy", "apps/v1", "poddisruptionbudgets", "leases", "endpointslices")
	wantContains(t, "create namespace", k.run("create", "namespace", "shop"), "namespace/shop created")

	file := filepath.Join(t.TempDir(), "shop.yaml")
	if err := os.WriteFile(file, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	wantContains(t, "first apply", k.run("apply", "-f", file),
		"configmap/settings created", "deployment.apps/web created", "service/web created", "pod/solo created")
	wantContains(t, "second apply", k.run("apply", "-f", file),
		"configmap/settings unchanged", "deployment.apps/web unchanged", "service/web unchanged", "pod/solo unchanged")
	changed := strings.Replace(manifest, "mode: fast", "mode: safe", 1)
	if err := os.WriteFile(file, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	wantContains(t, "third apply", k.run("apply", "-f", file), "configmap/settings configured", "service/web unchanged")

	wantContains(t, "get -o wide", k.run("-n", "shop", "get", "deploy", "-o", "wide"),
		"NAME", "READY", "UP-TO-DATE", "CONTAINERS", "IMAGES", "SELECTOR", "web", "0/2", "testbox:1", "app=web")
	wantContains(t, "get svc", k.run("-n", "shop", "get", "svc", "web"), "NodePort", "10.", "80:3")
	wantContains(t, "get po -o wide", k.run("-n", "shop", "get", "po", "-o", "wide"), "solo", "Pending", "NOMINATED NODE")
	wantContains(t, "get all", k.run("-n", "shop", "get", "all"), "pod/solo", "service/web", "deployment.apps/web")
	wantContains(t, "get -o yaml", k.run("-n", "shop", "get", "cm", "settings", "-o", "yaml"), "mode: safe", "resourceVersion:", "uid:")
	wantContains(t, "get -o json", k.run("-n", "shop", "get", "pod", "solo", "-o", "json"),
		`"restartPolicy": "Always"`, `"phase": "Pending"`, `"qosClass": "BestEffort"`)
	if out := k.run("-n", "shop", "get", "svc", "web", "-o", "jsonpath={.spec.ports[0].nodePort}"); len(out) != 5 || out[0] != '3' {
		t.Fatalf("jsonpath nodePort = %q", out)
	}
	if out := k.run("get", "pods", "-A", "-l", "app=solo", "-o", "name"); strings.TrimSpace(out) != "pod/solo" {
		t.Fatalf("-l app=solo: %q", out)
	}
	// No node runs anything here, so solo and the Deployment's two pods
	// (made by the built-in controllers) are all Pending in shop.
	waitFor(t, "the Deployment's pods", func() bool {
		return len(strings.Fields(k.run("-n", "shop", "get", "pods", "-l", "app=web", "-o", "name"))) == 2
	})
	if out := strings.Fields(k.run("get", "pods", "-A", "--field-selector", "status.phase=Pending,metadata.namespace=shop", "-o", "name")); len(out) != 3 || !slices.Contains(out, "pod/solo") {
		t.Fatalf("--field-selector: %q", out)
	}
	if out := k.run("get", "pods", "-A", "--field-selector", "status.phase=Pending,metadata.name=solo", "-o", "name"); strings.TrimSpace(out) != "pod/solo" {
		t.Fatalf("--field-selector metadata.name: %q", out)
	}
	if out := k.run("get", "pods", "-A", "--field-selector", "spec.nodeName=n1", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Fatalf("--field-selector spec.nodeName=n1 should match nothing: %q", out)
	}

	// get -w sees a label change made by another kubectl.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := k.cmd(ctx, "-n", "shop", "get", "cm", "-w", "--output-watch-events", "--show-labels")
	stdout, err := w.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = w.Wait() }()
	lines := bufio.NewScanner(stdout)
	// waitLine waits for a line holding all of subs.
	waitLine := func(subs ...string) {
		t.Helper()
		for lines.Scan() {
			if !slices.ContainsFunc(subs, func(s string) bool { return !strings.Contains(lines.Text(), s) }) {
				return
			}
		}
		t.Fatalf("kubectl get -w ended without a line containing %q", subs)
	}
	waitLine("ADDED", "settings") // the initial state
	wantContains(t, "label", k.run("-n", "shop", "label", "cm", "settings", "tier=gold"), "labeled")
	waitLine("MODIFIED", "settings", "tier=gold")
	wantContains(t, "annotate", k.run("-n", "shop", "annotate", "cm", "settings", "owner=team-a"), "annotated")
	wantContains(t, "strategic patch", k.run("-n", "shop", "patch", "deploy", "web", "-p",
		`{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"testbox:2"}]}}}}`), "patched")
	wantContains(t, "json patch", k.run("-n", "shop", "patch", "cm", "settings", "--type=json", "-p",
		`[{"op":"add","path":"/data/extra","value":"1"}]`), "patched")
	wantContains(t, "merge patch", k.run("-n", "shop", "patch", "cm", "settings", "--type=merge", "-p",
		`{"data":{"mode":null}}`), "patched")
	if out := k.run("-n", "shop", "get", "cm", "settings", "-o", "jsonpath={.data}{.metadata.annotations.owner}"); out != `{"extra":"1"}team-a` {
		t.Fatalf("after patches: %q", out)
	}
	if out := k.run("-n", "shop", "get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.metadata.generation}"); out != "testbox:2 2" {
		t.Fatalf("after strategic patch: %q", out)
	}
	wantContains(t, "scale", k.run("-n", "shop", "scale", "deploy", "web", "--replicas=4"), "scaled")
	if out := k.run("-n", "shop", "get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"); out != "4" {
		t.Fatalf("replicas after scale: %q", out)
	}
	out, err := k.try("apply", "--server-side", "-f", file)
	if err == nil || !strings.Contains(out, "server-side apply is not supported") {
		t.Fatalf("server-side apply should fail clearly: %v %s", err, out)
	}
	out, err = k.try("-n", "shop", "run", "bad", "--image=", "--restart=Never")
	if err == nil {
		t.Fatalf("pod without image accepted: %s", out)
	}

	wantContains(t, "delete", k.run("-n", "shop", "delete", "-f", file),
		`configmap "settings" deleted`, `deployment.apps "web" deleted`, `service "web" deleted`, `pod "solo" deleted`)
	waitLine("DELETED", "settings")
	// The Deployment's ReplicaSets and pods go through the garbage collector.
	waitFor(t, "the garbage collector to remove what the Deployment owned", func() bool {
		return strings.TrimSpace(k.run("-n", "shop", "get", "all", "-o", "name")) == ""
	})

	// Deleting a namespace removes its content, then the namespace itself
	// (kubectl waits for it to be gone).
	k.run("-n", "shop", "create", "configmap", "leftover", "--from-literal=a=b")
	wantContains(t, "delete namespace", k.run("delete", "namespace", "shop", "--timeout=30s"), `namespace "shop" deleted`)
	if out, err := k.try("get", "namespace", "shop"); err == nil || !strings.Contains(out, "NotFound") {
		t.Fatalf("namespace still there: %v %s", err, out)
	}
}
