package master

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoist-project/hoist/internal/testenv"
)

// kubectl runs the real kubectl against one master.
type kubectl struct {
	t          *testing.T
	bin        string
	kubeconfig string
	cacheDir   string
}

// newKubectl drives the master with the admin.kubeconfig it wrote, as an
// operator does (TLS, the cluster CA, the admin client certificate).
func newKubectl(t *testing.T, m *testMaster) *kubectl {
	bin := testenv.RequireCommand(t, "kubectl", "kubectl (install kubectl v1.32 at /usr/bin/kubectl)")
	return &kubectl{t: t, bin: bin, kubeconfig: m.Kubeconfig, cacheDir: filepath.Join(t.TempDir(), "cache")}
}

func (k *kubectl) cmd(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{"--kubeconfig", k.kubeconfig, "--cache-dir", k.cacheDir}, args...)
	return exec.CommandContext(ctx, k.bin, full...)
}

// run runs kubectl and fails the test on error; it returns stdout.
func (k *kubectl) run(args ...string) string {
	k.t.Helper()
	out, err := k.try(args...)
	if err != nil {
		k.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (k *kubectl) try(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr strings.Builder
	c := k.cmd(ctx, append([]string{"--request-timeout", "20s"}, args...)...)
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

func wantContains(t *testing.T, what, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(out, s) && !strings.Contains(squash(out), squash(s)) {
			t.Fatalf("%s: output lacks %q:\n%s", what, s, out)
		}
	}
}

// squash collapses runs of blanks, so checks of kubectl's aligned
// columns do not depend on their widths.
func squash(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' }), " ")
}

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tryCombined runs kubectl and returns stdout and stderr (where warnings go)
// interleaved.
func (k *kubectl) tryCombined(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := k.cmd(ctx, append([]string{"--request-timeout", "20s"}, args...)...).CombinedOutput()
	return string(out), err
}
