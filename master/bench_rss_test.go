//go:build bench

package master

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hoist-project/hoist/internal/benchstat"
	"github.com/hoist-project/hoist/internal/testenv"
)

const rssPods = 10000

// procStatusKiB reads a "Name:   N kB" field of /proc/PID/status.
func procStatusKiB(t *testing.T, pid int, field string) int64 {
	n, err := benchstat.StatusKiB(pid, field)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// heapInuse reads go_memstats_heap_inuse_bytes from the master's /metrics.
func heapInuse(t *testing.T, c *http.Client, base string) float64 {
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatal("/metrics has no go_memstats_heap_inuse_bytes")
	return 0
}

// rssResult is one measured master process.
type rssResult struct {
	env                       string
	idleRSS, fullRSS, fullHWM int64 // KiB
	fullAnon, fullFile        int64 // KiB: RSS of the Go heap and runtime vs. mapped files (etcd's bbolt database)
	idleHeap, fullHeap        float64
	wall                      time.Duration
}

// countPods counts a namespace's pods with a one-item page.
func countPods(t *testing.T, c *http.Client, base, ns string) int {
	resp, err := c.Get(base + "/api/v1/namespaces/" + ns + "/pods?limit=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var l struct {
		Metadata struct {
			RemainingItemCount *int `json:"remainingItemCount"`
		} `json:"metadata"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		t.Fatal(err)
	}
	n := len(l.Items)
	if l.Metadata.RemainingItemCount != nil {
		n += *l.Metadata.RemainingItemCount
	}
	return n
}

// benchRSS measures `hoist master` as it runs by default (GOGC=50), with
// Go's own default GC target, and with the Go runtime's soft memory limit
// set through the environment.
func benchRSS(t *testing.T, rep, raw *strings.Builder) {
	var results []rssResult
	for _, env := range []string{"", "GOGC=100", "GOMEMLIMIT=200MiB"} {
		results = append(results, masterRSS(t, env))
	}
	mib := func(kib int64) string { return fmt.Sprintf("%.0f MiB", float64(kib)/1024) }
	fmt.Fprintf(rep, "## Memory\n\n`hoist master` as its own process (embedded etcd, all built-in controllers and the scheduler, "+
		"as `hoist master` runs by default); RSS from /proc/PID/status, Go heap in use from its /metrics. "+
		"%d pods bound to 100 Node objects (which nobody heartbeats) are created, then the numbers are read 10 s after the last create.\n\n"+
		"| environment | idle RSS | idle Go heap | RSS with %d pods | peak RSS (VmHWM) | Go heap in use | create time |\n|---|---|---|---|---|---|---|\n",
		rssPods, rssPods)
	for _, r := range results {
		env := r.env
		if env == "" {
			env = "(default: GOGC=50)"
		}
		fmt.Fprintf(rep, "| %s | %s | %.0f MiB | %s | %s | %.0f MiB | %s |\n", env, mib(r.idleRSS), r.idleHeap/(1<<20),
			mib(r.fullRSS), mib(r.fullHWM), r.fullHeap/(1<<20), r.wall.Round(time.Millisecond))
		fmt.Fprintf(raw, "rss env=%q idle=%dKiB heap=%.0fB pods=%d rss=%dKiB (anon=%dKiB file=%dKiB) hwm=%dKiB heap=%.0fB\n",
			r.env, r.idleRSS, r.idleHeap, rssPods, r.fullRSS, r.fullAnon, r.fullFile, r.fullHWM, r.fullHeap)
	}
	fmt.Fprintf(rep, "\nTarget: < 250 MiB with %d pods.\n\n", rssPods)
}

// masterRSS runs one master process with env added to its environment.
func masterRSS(t *testing.T, env string) rssResult {
	bin := testenv.Binary(t, "hoist")
	dir := t.TempDir()
	port := testenv.FreePort(t)
	cmd := exec.Command(bin, "master", "--data-dir", dir, "--secure-address", fmt.Sprintf("127.0.0.1:%d", port),
		"--etcd-client-url", testenv.FreeLoopbackURL(t), "--etcd-peer-url", testenv.FreeLoopbackURL(t))
	cmd.Env = os.Environ()
	if env != "" {
		cmd.Env = append(cmd.Env, env)
	}
	logf, err := os.Create(filepath.Join(dir, "master.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			logf.Close()
		})
	}
	t.Cleanup(stop)
	defer stop() // the next measurement gets the machine to itself
	kc := filepath.Join(dir, "admin.kubeconfig")
	var client *http.Client
	var base string
	deadline := time.Now().Add(60 * time.Second)
	for {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("hoist master not ready after 60s:\n%s", log)
		}
		time.Sleep(200 * time.Millisecond)
		rc, err := clientcmd.BuildConfigFromFlags("", kc)
		if err != nil {
			continue
		}
		if client, err = rest.HTTPClientFor(rc); err != nil {
			t.Fatal(err)
		}
		base = rc.Host
		if resp, err := client.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
	}
	pid := cmd.Process.Pid
	// Measuring idle memory needs idle time; nothing is waited for here.
	time.Sleep(10 * time.Second)
	idleRSS, idleHeap := procStatusKiB(t, pid, "VmRSS"), heapInuse(t, client, base)

	resp, err := client.Post(base+"/api/v1/namespaces", "application/json",
		strings.NewReader(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"rss"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The pods' nodes exist, so podgc does not collect the pods.
	for i := range 100 {
		resp, err := client.Post(base+"/api/v1/nodes", "application/json",
			strings.NewReader(fmt.Sprintf(`{"apiVersion":"v1","kind":"Node","metadata":{"name":"node-%d"}}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create node-%d: HTTP %d", i, resp.StatusCode)
		}
	}
	_, wall := parallel(t, rssPods, createWorkers, func(i int) error {
		// Bound to nodes, as in a running cluster: the scheduler leaves
		// them alone; the controllers' informers still cache them.
		return createPod(client, base, "rss", benchPod(fmt.Sprintf("r%05d", i), fmt.Sprintf("node-%d", i%100), 0))
	})
	time.Sleep(10 * time.Second) // let informers and the watch cache settle
	fullRSS, fullHWM, fullHeap := procStatusKiB(t, pid, "VmRSS"), procStatusKiB(t, pid, "VmHWM"), heapInuse(t, client, base)
	fullAnon, fullFile := procStatusKiB(t, pid, "RssAnon"), procStatusKiB(t, pid, "RssFile")
	if n := countPods(t, client, base, "rss"); n != rssPods {
		t.Fatalf("%d pods stored at the measurement, want %d", n, rssPods)
	}
	return rssResult{env: env, idleRSS: idleRSS, idleHeap: idleHeap, fullRSS: fullRSS, fullHWM: fullHWM, fullAnon: fullAnon, fullFile: fullFile, fullHeap: fullHeap, wall: wall}
}

// TestBenchRSS runs the memory measurement alone and logs its table.
func TestBenchRSS(t *testing.T) {
	var rep, raw strings.Builder
	benchRSS(t, &rep, &raw)
	t.Log("\n" + rep.String() + raw.String())
}
