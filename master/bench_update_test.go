//go:build bench

package master

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

const updatePods = 2000

// sendOK issues one request and fails on an unexpected status.
func sendOK(c *http.Client, method, url, contentType string, body []byte, want int) error {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, url, resp.StatusCode, b)
	}
	return nil
}

// benchUpdate measures the scheduler's and the kubelet's writes: a
// binding per pending pod, then a status patch per pod, with the etcd
// requests each cost (from the master's own metrics).
func benchUpdate(t *testing.T, rep, raw *strings.Builder) {
	m, _ := quietMaster(t)
	createNamespace(t, m, "bench")
	base := m.URL + "/api/v1/namespaces/bench/pods/"
	parallel(t, updatePods, createWorkers, func(i int) error {
		return createPod(m.client, m.URL, "bench", benchPod(fmt.Sprintf("u%05d", i), "", 0))
	})
	type phase struct {
		name string
		op   func(i int) error
	}
	phases := []phase{
		{"POST pods/binding", func(i int) error {
			name := fmt.Sprintf("u%05d", i)
			body := fmt.Sprintf(`{"apiVersion":"v1","kind":"Binding","metadata":{"name":%q},"target":{"kind":"Node","name":"node-%d"}}`, name, i%100)
			return sendOK(m.client, "POST", base+name+"/binding", "application/json", []byte(body), http.StatusCreated)
		}},
		{"PATCH pods/status", func(i int) error {
			body := fmt.Sprintf(`{"status":{"phase":"Running","podIP":"10.244.%d.%d","conditions":[{"type":"Ready","status":"True"}]}}`, i/250, i%250+1)
			return sendOK(m.client, "PATCH", base+fmt.Sprintf("u%05d", i)+"/status", "application/merge-patch+json", []byte(body), http.StatusOK)
		}},
	}
	fmt.Fprintf(rep, "## Update throughput (binding, status patch)\n\n%d pending pods, then %d parallel clients bind each (as the scheduler does), "+
		"then patch each one's status (as a kubelet does). Controllers and scheduler are off. etcd requests per write are the master's own "+
		"(`etcd_request_duration_seconds_count`), so they do not depend on the machine's load.\n\n"+
		"| write | ops | ops/s | p50 | p99 | etcd gets / write | etcd txns / write |\n|---|---|---|---|---|---|---|\n", updatePods, createWorkers)
	for _, p := range phases {
		before := etcdCalls(t, m)
		lat, wall := parallel(t, updatePods, createWorkers, p.op)
		after := etcdCalls(t, m)
		gets := (after["get"] - before["get"]) / updatePods
		txns := (after["update"] + after["delete"] - before["update"] - before["delete"]) / updatePods
		rate := float64(updatePods) / wall.Seconds()
		fmt.Fprintf(rep, "| %s | %d | %.0f | %s | %s | %.2f | %.2f |\n", p.name, updatePods, rate, ms(lat.pct(0.5)), ms(lat.pct(0.99)), gets, txns)
		fmt.Fprintf(raw, "update %q n=%d workers=%d rate=%.0f/s p50=%s p99=%s gets/op=%.2f txns/op=%.2f\n",
			p.name, updatePods, createWorkers, rate, ms(lat.pct(0.5)), ms(lat.pct(0.99)), gets, txns)
	}
	rep.WriteString("\n")
	benchCacheList(t, m, rep, raw)
	m.Stop()
}

// benchCacheList times lists served by the watch cache (resourceVersion=0,
// as informers list): all pods, and one node's pods by field selector.
func benchCacheList(t *testing.T, m *testMaster, rep, raw *strings.Builder) {
	const n = 20
	fmt.Fprintf(rep, "Lists from the watch cache (`resourceVersion=0`) of the same %d pods, %d times each, one at a time:\n\n"+
		"| list | items | p50 | max |\n|---|---|---|---|\n", updatePods, n)
	for _, q := range []struct{ name, query string }{
		{"all pods", ""},
		{"fieldSelector=spec.nodeName=node-7", "&fieldSelector=spec.nodeName%3Dnode-7"},
	} {
		url := m.URL + "/api/v1/namespaces/bench/pods?resourceVersion=0" + q.query
		var items int
		lat, _ := parallel(t, n, 1, func(int) error {
			r := m.get(t, url, "application/json")
			if r.code != http.StatusOK {
				return fmt.Errorf("list %s: HTTP %d", url, r.code)
			}
			var l struct{ Items []json.RawMessage }
			if err := json.Unmarshal(r.body, &l); err != nil {
				return err
			}
			items = len(l.Items)
			return nil
		})
		fmt.Fprintf(rep, "| %s | %d | %s | %s |\n", q.name, items, ms(lat.pct(0.5)), ms(lat.pct(1)))
		fmt.Fprintf(raw, "list %q items=%d p50=%s max=%s\n", q.name, items, ms(lat.pct(0.5)), ms(lat.pct(1)))
	}
	rep.WriteString("\n")
}

// TestBenchUpdate runs the update benchmark alone and logs its table.
func TestBenchUpdate(t *testing.T) {
	var rep, raw strings.Builder
	benchUpdate(t, &rep, &raw)
	t.Log("\n" + rep.String() + raw.String())
}
