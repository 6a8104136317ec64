//go:build bench

package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hoist-project/hoist/internal/cni/plugintest"
	"github.com/hoist-project/hoist/internal/testenv"
)

// TestBenchReportCNI is `make bench`'s entry: hoist's plugins against
// Debian's reference plugins, report into $HOIST_BENCH_OUT.
func TestBenchReportCNI(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "iptables-restore", "iptables")
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		t.Fatal("reference plugins missing: apt-get install containernetworking-plugins")
	}
	out := os.Getenv("HOIST_BENCH_OUT")
	if out == "" {
		out = filepath.Join(testenv.ModuleRoot(t), "docs", "bench")
	}
	o := options{hoistDir: plugintest.HoistPlugins(t), refDir: "/usr/lib/cni",
		out: filepath.Join(out, "cni.md"), rawOut: filepath.Join(out, "raw", "cni.txt"), seq: 200, par: 50}
	if err := bench(o, os.Stderr); err != nil {
		t.Fatal(err)
	}
}
