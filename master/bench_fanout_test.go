//go:build bench

package master

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

const (
	fanoutWatchers = 1000
	fanoutClients  = 20 // watchers spread over this many TLS connections
	fanoutRate     = 200
	fanoutSeconds  = 10
)

const sentMarker = `"hoist.bench/sent":"`

// fanoutWatcher reads one watch stream and records, for every event, the
// time since the writer stamped the pod.
type fanoutWatcher struct {
	lat  latencies
	seen atomic.Int64
}

func (w *fanoutWatcher) read(resp *http.Response) {
	defer resp.Body.Close()
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		i := bytes.Index(line, []byte(sentMarker))
		if i < 0 {
			continue
		}
		rest := line[i+len(sentMarker):]
		sent, err := strconv.ParseInt(string(rest[:bytes.IndexByte(rest, '"')]), 10, 64)
		if err != nil || sent == 0 {
			continue
		}
		w.lat = append(w.lat, time.Duration(now-sent))
		w.seen.Add(1)
	}
}

// fanoutResult is one fan-out run.
type fanoutResult struct {
	rate, total         int
	achieved            float64
	got, want           int64
	delivery, createLat latencies
	drained             time.Duration
}

// benchFanout runs the fan-out at the target rate and, for scale, at a
// tenth of it.
func benchFanout(t *testing.T, rep, raw *strings.Builder) {
	m, _ := quietMaster(t)
	var results []fanoutResult
	for _, rate := range []int{fanoutRate / 10, fanoutRate} {
		results = append(results, fanout(t, m, rate, fanoutWatchers))
	}
	fmt.Fprintf(rep, "## Watch fan-out\n\n%d watches of one namespace's pods (spread over %d TLS connections) while writers create "+
		"pods at a fixed rate for %d s. Latency = watcher read time − writer send time (so it includes the create itself). "+
		"Watchers and writers run in the benchmark process, beside the master, on the same 2 CPUs.\n\n"+
		"| writes/s (achieved) | events delivered | p50 | p99 | max | all delivered after | create p50 / p99 meanwhile |\n|---|---|---|---|---|---|---|\n",
		fanoutWatchers, fanoutClients, fanoutSeconds)
	for _, r := range results {
		fmt.Fprintf(rep, "| %d (%.0f) | %d / %d | %s | %s | %s | %s | %s / %s |\n", r.rate, r.achieved, r.got, r.want,
			ms(r.delivery.pct(0.5)), ms(r.delivery.pct(0.99)), ms(r.delivery.pct(1)), r.drained.Round(time.Millisecond),
			ms(r.createLat.pct(0.5)), ms(r.createLat.pct(0.99)))
		fmt.Fprintf(raw, "fanout watchers=%d rate=%d/s achieved=%.0f/s pods=%d delivered=%d/%d p50=%s p99=%s max=%s create-p50=%s create-p99=%s\n",
			fanoutWatchers, r.rate, r.achieved, r.total, r.got, r.want, ms(r.delivery.pct(0.5)), ms(r.delivery.pct(0.99)), ms(r.delivery.pct(1)),
			ms(r.createLat.pct(0.5)), ms(r.createLat.pct(0.99)))
	}
	fmt.Fprintf(rep, "\nTarget: p99 < 100 ms at %d writes/s.\n\n", fanoutRate)
	m.Stop()
}

// fanout opens nWatchers watches on a fresh namespace and creates
// rate pods a second for fanoutSeconds.
func fanout(t *testing.T, m *testMaster, rate, nWatchers int) fanoutResult {
	ns := fmt.Sprintf("fan%d-%d-%d", rate, nWatchers, time.Now().UnixNano()%1000000)
	createNamespace(t, m, ns)
	r := m.get(t, m.URL+"/api/v1/namespaces/"+ns+"/pods", "")
	rv := r.json(t)["metadata"].(map[string]any)["resourceVersion"].(string)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clients := make([]*http.Client, fanoutClients)
	for i := range clients {
		c, err := rest.HTTPClientFor(m.Rest)
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	total := rate * fanoutSeconds
	watchers := make([]*fanoutWatcher, nWatchers)
	var wg sync.WaitGroup
	for i := range watchers {
		w := &fanoutWatcher{lat: make(latencies, 0, total)}
		watchers[i] = w
		req, _ := http.NewRequestWithContext(ctx, "GET", m.URL+"/api/v1/namespaces/"+ns+"/pods?watch=1&resourceVersion="+rv, nil)
		resp, err := clients[i%fanoutClients].Do(req)
		if err != nil {
			t.Fatalf("watch %d: %v", i, err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("watch %d: HTTP %d", i, resp.StatusCode)
		}
		wg.Add(1)
		go func() { defer wg.Done(); w.read(resp) }()
	}

	work := make(chan int, total)
	var writeErr atomic.Value
	var writers sync.WaitGroup
	writeLat := make(latencies, total)
	for range 8 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range work {
				t0 := time.Now()
				if err := createPod(m.client, m.URL, ns, benchPod(fmt.Sprintf("f%05d", i), "node-a", t0.UnixNano())); err != nil {
					writeErr.Store(err)
				}
				writeLat[i] = time.Since(t0)
			}
		}()
	}
	start := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for i := range total {
		<-tick.C
		work <- i
	}
	tick.Stop()
	close(work)
	writers.Wait()
	writeWall := time.Since(start)
	if err, _ := writeErr.Load().(error); err != nil {
		t.Fatal(err)
	}
	res := fanoutResult{rate: rate, total: total, achieved: float64(total) / writeWall.Seconds(), want: int64(total * nWatchers), createLat: writeLat}
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		res.got = 0
		for _, w := range watchers {
			res.got += w.seen.Load()
		}
		if res.got == res.want {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.drained = time.Since(start)
	cancel()
	wg.Wait()
	for _, w := range watchers {
		res.delivery = append(res.delivery, w.lat...)
	}
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	return res
}
