package master

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const typoDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: typo, namespace: default}
spec:
  replicas: 1
  replicaz: 3
  selector: {matchLabels: {app: typo}}
  template:
    metadata: {labels: {app: typo}}
    spec: {containers: [{name: main, image: testbox:1, imagePullPolicyy: Never}]}
`

// TestE2EKubectlFieldValidation: kubectl's --validate modes map to the
// server's fieldValidation, with upstream's messages.
func TestE2EKubectlFieldValidation(t *testing.T) {
	k := newKubectl(t, startMaster(t, "", nil))
	dir := t.TempDir()
	file := filepath.Join(dir, "typo.yaml")
	if err := os.WriteFile(file, []byte(typoDeployment), 0o600); err != nil {
		t.Fatal(err)
	}
	unknown := []string{`unknown field "spec.replicaz"`, `unknown field "spec.template.spec.containers[0].imagePullPolicyy"`}

	// Strict: a create is refused as upstream words it, nothing is stored.
	out, err := k.try("apply", "--validate=strict", "-f", file)
	if err == nil {
		t.Fatalf("strict apply with unknown fields succeeded: %s", out)
	}
	wantContains(t, "strict create", out, append([]string{`Error from server (BadRequest): error when creating "` + file +
		`": Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: `}, unknown...)...)
	if out, err := k.try("get", "deployment", "typo"); err == nil {
		t.Fatalf("the refused Deployment was stored: %s", out)
	}

	// kubectl's default is strict too.
	if out, err := k.try("apply", "-f", file); err == nil || !strings.Contains(out, "strict decoding error") {
		t.Fatalf("default apply with unknown fields: %v %s", err, out)
	}
	// Warn: created, with a warning per unknown field.
	out = mustOK(t)(k.tryCombined("apply", "--validate=warn", "-f", file))
	wantContains(t, "warn create", out, `Warning: unknown field "spec.replicaz"`, "deployment.apps/typo created")
	// Ignore: silent.
	if out := mustOK(t)(k.tryCombined("apply", "--validate=false", "-f", file)); strings.Contains(out, "Warning") {
		t.Fatalf("--validate=false warned: %s", out)
	}

	// Strict on an existing object: the apply patch is refused, the object
	// keeps its replicas.
	changed := strings.Replace(typoDeployment, "replicas: 1", "replicas: 2", 1)
	if err := os.WriteFile(file, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = k.try("apply", "--validate=strict", "-f", file)
	if err == nil {
		t.Fatalf("strict apply patch with unknown fields succeeded: %s", out)
	}
	wantContains(t, "strict patch", out, append([]string{"Error from server (BadRequest)", "strict decoding error: "}, unknown...)...)
	if got := k.run("get", "deployment", "typo", "-o", "jsonpath={.spec.replicas}"); got != "1" {
		t.Fatalf("replicas after a refused patch: %q", got)
	}
	// A replace is a PUT: upstream words it like a create.
	out, err = k.try("replace", "--validate=strict", "-f", file)
	wantContains(t, "strict replace", out, `Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: `)
	if err == nil {
		t.Fatal("strict replace succeeded")
	}
}
