package images

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/namespaces"

	"github.com/hoist-project/hoist/internal/testenv"
)

// hoistImages runs `hoist images args...` and returns its output and exit code.
func hoistImages(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(testenv.Binary(t, "hoist"), append([]string{"images"}, args...)...).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	default:
		t.Fatalf("run hoist images %q: %v", args, err)
		return "", -1
	}
}

// hasRow reports whether a line of out starts with the given columns.
func hasRow(out string, cols ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= len(cols) && strings.Join(f[:len(cols)], " ") == strings.Join(cols, " ") {
			return true
		}
	}
	return false
}

func mustHoistImages(t *testing.T, args ...string) string {
	t.Helper()
	out, code := hoistImages(t, args...)
	if code != 0 {
		t.Fatalf("hoist images %q exited %d:\n%s", args, code, out)
	}
	return out
}

// TestIntegrationHoistImagesCLI drives build, list, import and push through
// the hoist binary, as an operator would.
func TestIntegrationHoistImagesCLI(t *testing.T) {
	requireBusybox(t)
	testenv.RequireCommand(t, "docker-registry", "docker-registry")
	out := t.TempDir()
	built := mustHoistImages(t, "build", "--out", out, "--bin-dir", binDir(t))
	listed, err := List(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 2 {
		t.Fatalf("build wrote %d images, want 2:\n%s", len(listed), built)
	}
	list := mustHoistImages(t, "list", out)
	for _, img := range listed {
		if !hasRow(built, img.Ref, img.Digest) || !hasRow(list, img.Ref, img.Digest) {
			t.Errorf("build/list output lacks %s %s:\nbuild:\n%s\nlist:\n%s", img.Ref, img.Digest, built, list)
		}
	}

	d := startContainerd(t)
	ctx := d.ctx
	ns, _ := namespaces.Namespace(ctx)
	mustHoistImages(t, "import", "--address", d.address, "--namespace", ns, out)
	for _, want := range listed {
		img, err := d.client.GetImage(ctx, want.Ref)
		if err != nil {
			t.Fatalf("after import: %v", err)
		}
		if got := img.Target().Digest.String(); got != want.Digest {
			t.Errorf("%s imported with digest %s, want %s", want.Ref, got, want.Digest)
		}
		if ok, err := img.IsUnpacked(ctx, ""); err != nil || !ok {
			t.Errorf("%s not unpacked after import (%v)", want.Ref, err)
		}
	}

	reg, err := StartRegistry(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	pushed := mustHoistImages(t, "push", "--registry", reg.Addr(), out)
	for _, img := range listed {
		if !hasRow(pushed, reg.Addr()+"/"+img.Ref, img.Digest) {
			t.Errorf("push output lacks %s/%s:\n%s", reg.Addr(), img.Ref, pushed)
		}
	}
}

func TestHoistImagesCLIRejectsBadInput(t *testing.T) {
	empty := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "missing subcommand"},
		{[]string{"frob"}, 2, `unknown subcommand "frob"`},
		{[]string{"build"}, 2, "--out DIR is required"},
		{[]string{"build", "--out", empty, "--nope"}, 2, "flag provided but not defined: -nope"},
		{[]string{"list"}, 2, "want 1 argument(s)"},
		{[]string{"import", empty}, 2, "--address SOCK is required"},
		{[]string{"push", empty}, 2, "--registry HOST:PORT is required"},
		{[]string{"build", "--out", filepath.Join(empty, "out"), "--bin-dir", empty}, 1, "pause binary not found in " + empty + ": run make build"},
		{[]string{"list", empty}, 1, "no image archives (*.tar) in " + empty},
	} {
		out, code := hoistImages(t, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.msg) {
			t.Errorf("hoist images %q: exit %d, output:\n%s\nwant exit %d containing %q", tc.args, code, out, tc.code, tc.msg)
		}
	}
	if _, err := os.Stat(filepath.Join(empty, "out")); err == nil {
		t.Error("a failed build created its output directory")
	}
}
