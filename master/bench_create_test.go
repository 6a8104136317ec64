//go:build bench

package master

import (
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/hoist-project/hoist/internal/benchstat"
)

// TestBenchCreateRatio runs the create benchmark alone, HOIST_CREATE_RUNS
// times (default 3), and logs each run's API and raw etcd rates and their
// ratio, then the median ratio: the create table's number, without the
// rest of the report, for comparing changes on a shared machine.
func TestBenchCreateRatio(t *testing.T) {
	runs := 3
	if n, err := strconv.Atoi(os.Getenv("HOIST_CREATE_RUNS")); err == nil && n > 0 {
		runs = n
	}
	var ratios, cpu []float64
	for i := range runs {
		load := benchstat.LoadAvg()
		r := measureCreate(t)
		ratio := 100 * r.apiRate / r.etcdRate
		ratios = append(ratios, ratio)
		cpu = append(cpu, float64(r.apiCPU.Microseconds()))
		t.Logf("run %d: api %.0f/s etcd %.0f/s ratio %.1f%% (in-process Puts %.0f/s: %.1f%%); CPU per create %v, per Put %v; etcd requests per create %v (load %s -> %s)",
			i+1, r.apiRate, r.etcdRate, ratio, r.inprocRate, 100*r.apiRate/r.inprocRate, r.apiCPU, r.etcdCPU, r.etcdPerCreate, load, benchstat.LoadAvg())
	}
	slices.Sort(ratios)
	slices.Sort(cpu)
	t.Logf("median ratio %.1f%% of %d runs %.1f; median CPU per create %.0fµs", ratios[len(ratios)/2], runs, ratios, cpu[len(cpu)/2])
}
