// Package testenv is the shared base of hoist's tests: prerequisite checks that
// fail (never skip) with the fix, and the project's binaries built once per run.
//
// Test layers are picked by name: TestIntegration* needs root and real kernel
// or daemon state on one node, TestE2E* drives a multi-node cluster with the
// real kubectl, every other test is a unit test (no root, fakes only).
package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// RequireRoot fails the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (network namespaces, containerd, iptables): run `make test` as root")
	}
}

// RequireCommand fails the test unless the executable is on PATH and returns
// its path. debianPackage names what `make deps` installs to provide it.
func RequireCommand(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found on PATH: install it with `make deps` (Debian package %s)", name, debianPackage)
	}
	return p
}

// binaries maps the names under bin/ (as `make build` lays them out) to packages.
var binaries = map[string]string{
	"hoist":            "./cmd/hoist",
	"hoist-log-driver": "./cmd/hoist-log-driver",
	"pause":            "./packaging/images/pause",
	"testbox":          "./packaging/images/testbox",
}

var (
	buildMu  sync.Mutex
	built    = map[string]string{}
	buildDir string
)

// Binary returns the path of one of hoist's binaries: "hoist", "pause",
// "testbox" or "cni/<plugin>". Under `make test` they come from $HOIST_BIN_DIR;
// otherwise the package is built once per test process (static, like `make build`).
func Binary(t testing.TB, name string) string {
	t.Helper()
	if dir := os.Getenv("HOIST_BIN_DIR"); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("HOIST_BIN_DIR=%s has no %s: run `make build`", dir, name)
		}
		return p
	}
	pkg, ok := binaries[name]
	if !ok && strings.HasPrefix(name, "cni/") {
		pkg, ok = "./cni-plugins/"+strings.TrimPrefix(name, "cni/"), true
	}
	if !ok {
		t.Fatalf("testenv: unknown binary %q", name)
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "hoist-testbin-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d // one per test process; removed by the OS tmp cleaner, reused by nothing
	}
	out := filepath.Join(buildDir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = ModuleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, stderr.String())
	}
	built[name] = out
	return out
}

// ModuleRoot returns the directory holding hoist's go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("testenv: not inside the hoist module")
	}
	return filepath.Dir(gomod)
}

// UniqueName returns a short name with hoist's test prefix, unique per process
// and call, that fits in a Linux interface name (15 bytes) when prefix is short.
func UniqueName(prefix string) string {
	nameMu.Lock()
	defer nameMu.Unlock()
	nameSeq++
	return fmt.Sprintf("%s%x%x", prefix, os.Getpid()%0xffff, nameSeq)
}

var (
	nameMu  sync.Mutex
	nameSeq int
)

// ReadFile returns a file's contents or fails the test.
func ReadFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
