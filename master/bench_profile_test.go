//go:build bench

package master

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"
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

// TestBenchProfileHeap writes a heap profile of an in-process master (all
// controllers and the scheduler, as `hoist master` runs) holding
// rssPods pods bound to 100 nodes to $HOIST_HEAP_PROFILE (default
// /tmp/hoist-master-heap.pprof): `go tool pprof -sample_index=inuse_space
// -top`. The test's own client shares the heap; its stacks are apart.
func TestBenchProfileHeap(t *testing.T) {
	path := os.Getenv("HOIST_HEAP_PROFILE")
	if path == "" {
		path = "/tmp/hoist-master-heap.pprof"
	}
	m := startMaster(t, "", nil)
	createNamespace(t, m, "rss")
	for i := range 100 {
		r := m.do(t, "POST", m.URL+"/api/v1/nodes", "application/json",
			[]byte(fmt.Sprintf(`{"apiVersion":"v1","kind":"Node","metadata":{"name":"node-%d"}}`, i)))
		if r.code != http.StatusCreated {
			t.Fatalf("create node-%d: HTTP %d %s", i, r.code, r.body)
		}
	}
	_, wall := parallel(t, rssPods, createWorkers, func(i int) error {
		return createPod(m.client, m.URL, "rss", benchPod(fmt.Sprintf("r%05d", i), fmt.Sprintf("node-%d", i%100), 0))
	})
	// The informers and the watch cache catch up with the last creates.
	if n := countPods(t, m.client, m.URL, "rss"); n != rssPods {
		t.Fatalf("%d pods stored, want %d", n, rssPods)
	}
	time.Sleep(5 * time.Second)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d creates in %v; heap in use %d MiB after GC; profile in %s", rssPods, wall, ms.HeapInuse>>20, path)
	m.Stop()
}
