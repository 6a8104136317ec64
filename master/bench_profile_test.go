//go:build bench

package master

import (
	"fmt"
	"os"
	"runtime/pprof"
	"testing"
)

// TestBenchProfileCreate writes a CPU profile of the in-process master
// during the create benchmark's workload to $HOIST_PROFILE (default
// /tmp/hoist-master-create.pprof), for `go tool pprof`.
func TestBenchProfileCreate(t *testing.T) {
	path := os.Getenv("HOIST_PROFILE")
	if path == "" {
		path = "/tmp/hoist-master-create.pprof"
	}
	m, _ := quietMaster(t)
	createNamespace(t, m, "bench")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	_, wall := parallel(t, createPods, createWorkers, func(i int) error {
		return createPod(m.client, m.URL, "bench", benchPod(fmt.Sprintf("p%05d", i), "node-a", 0))
	})
	pprof.StopCPUProfile()
	t.Logf("%d creates in %v (%.0f/s); profile in %s", createPods, wall, float64(createPods)/wall.Seconds(), path)
	m.Stop()
}
