//go:build bench

package proxy

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/proxy/changes"
	ct "github.com/hoist-project/hoist/proxy/changes/changestest"
	"github.com/hoist-project/hoist/proxy/ebpf/ebpftest"
)

const (
	benchServices  = 10000
	benchEndpoints = 5
	benchSamples   = 2000
	benchRounds    = 4
	benchVIP       = "10.100.0.10" // outside BigState's 10.96.0.0/16
)

// TestBenchReportProxy is `make bench`'s entry for the service proxy: sync
// time at 10,000 services × 5 endpoints and connect latency to a cluster
// IP, iptables and eBPF side by side, against connecting to the pod
// directly. Report: $HOIST_BENCH_OUT/proxy.md.
func TestBenchReportProxy(t *testing.T) {
	testenv.RequireRoot(t)
	out := os.Getenv("HOIST_BENCH_OUT")
	if out == "" {
		out = filepath.Join(testenv.ModuleRoot(t), "docs", "bench")
	}
	var rows []benchResult
	for _, mode := range []string{ModeIPTables, ModeEBPF} {
		r := benchMode(t, mode)
		rows = append(rows, r)
		t.Logf("%+v", r)
	}
	if err := os.WriteFile(filepath.Join(out, "proxy.md"), []byte(benchMarkdown(rows)), 0o644); err != nil {
		t.Fatal(err)
	}
}

type benchResult struct {
	mode          string
	full, partial time.Duration // at benchServices
	resync        time.Duration // full sync again, nothing changed
	direct, vip   [2]latency    // [10 services, benchServices]
}

type latency struct{ p50, p99 time.Duration }

func benchMode(t *testing.T, mode string) benchResult {
	e := newModeEnv(t, mode, 2)
	cgroup := e.bpf.cgroup
	if cgroup == "" {
		cgroup = ebpftest.Cgroup(t) // the iptables mode's clients need no programs, only a cgroup
	}
	client := ebpftest.Client{Cgroup: cgroup, NetnsPath: e.node.NetnsPath}
	r := benchResult{mode: mode}
	ctx := context.Background()
	// Direct and cluster IP alternate in rounds, so both see the same
	// load from whatever else runs on the machine.
	measure := func(addrs ...string) []latency {
		t.Helper()
		all := make([][]time.Duration, len(addrs))
		for round := 0; round < benchRounds; round++ {
			for i, a := range addrs {
				ds, err := client.Latency(a, benchSamples/benchRounds)
				if err != nil {
					t.Fatal(err)
				}
				all[i] = append(all[i], ds...)
			}
		}
		out := make([]latency, len(addrs))
		for i, ds := range all {
			sort.Slice(ds, func(a, b int) bool { return ds[a] < ds[b] })
			out[i] = latency{ds[len(ds)/2], ds[len(ds)*99/100]}
		}
		return out
	}
	sync := func(st changes.State, full bool) time.Duration {
		t.Helper()
		start := time.Now()
		if err := e.syncer.DataPath.Sync(ctx, st, full); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	direct := fmt.Sprintf("%s:%d", e.pods[0].ip, podTCPPort)
	vip := benchVIP + ":80"

	for i, n := range []int{10, benchServices} {
		st := benchState(e, n)
		d := sync(st, true)
		if n == benchServices {
			r.full = d
			if mode == ModeEBPF { // iptables rewrites every chain again: the full sync's cost
				r.resync = sync(st, true)
			}
			for name := range st.Services {
				if name.Namespace == "bench" {
					st.Endpoints[name] = st.Endpoints[name][1:]
					break
				}
			}
			r.partial = sync(st, false)
		}
		e.reachesAllVia(client.TCP, vip, 2)
		l := measure(direct, vip)
		r.direct[i], r.vip[i] = l[0], l[1]
	}
	return r
}

// benchState is n-1 services of BigState plus one cluster IP served by
// the env's two pods.
func benchState(e *nodeEnv, n int) changes.State {
	st := ct.BigState(n-1, benchEndpoints)
	name := changes.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "default", Name: "web"}, Protocol: v1.ProtocolTCP}
	st.Services[name] = &changes.ServicePort{Name: name, ClusterIP: netip.MustParseAddr(benchVIP), Port: 80, Protocol: v1.ProtocolTCP}
	for _, p := range e.pods {
		st.Endpoints[name] = append(st.Endpoints[name], changes.Endpoint{IP: netip.MustParseAddr(p.ip), Port: podTCPPort,
			Ready: true, Serving: true, NodeName: e.node.Name, Local: true})
	}
	return st
}

func benchMarkdown(rows []benchResult) string {
	var b strings.Builder
	ms := func(d time.Duration) string {
		if d >= 10*time.Second {
			return fmt.Sprintf("%.1f s", d.Seconds())
		}
		return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
	}
	us := func(d time.Duration) string { return fmt.Sprintf("%d µs", d.Microseconds()) }
	fmt.Fprintf(&b, "# Service proxy benchmark\n\n")
	fmt.Fprintf(&b, "`make bench` (`go test -tags bench -run TestBenchReportProxy ./proxy/`), %s, kernel %s, %s.\n\n",
		time.Now().UTC().Format("2006-01-02"), kernelRelease(), "2 shared cores")
	fmt.Fprintf(&b, "## Sync time, %d services × %d endpoints\n\n", benchServices, benchEndpoints)
	fmt.Fprintf(&b, "A node netns of the test fabric. *full*: a full sync from 10 services to this size; *full again*: a full sync with nothing changed (iptables rewrites every chain, eBPF reads the maps back and writes nothing); *partial*: after one endpoint of one service was removed.\n\n")
	fmt.Fprintf(&b, "| mode | full | full again | partial (one endpoint) |\n|---|---|---|---|\n")
	for _, r := range rows {
		again := ms(r.resync)
		if r.resync == 0 {
			again = "≈ full (not re-measured)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.mode, ms(r.full), again, ms(r.partial))
	}
	fmt.Fprintf(&b, "\n## Connect + one-line reply latency to a cluster IP\n\n")
	fmt.Fprintf(&b, "%d sequential connections each from a process on the node (in a test cgroup; for eBPF, the cgroup the programs are attached to) to a service whose two endpoints are pods on that node; the server writes one line and closes. *direct* connects to a pod IP, the limit; direct and cluster IP alternate in %d rounds. In iptables mode every new connection of the node, direct ones included, walks `KUBE-SERVICES` in nat OUTPUT, so *direct* there carries the O(services) cost too (the cluster IP's own rule may sit early in the chain).\n\n", benchSamples, benchRounds)
	fmt.Fprintf(&b, "| mode | services | direct p50 | direct p99 | cluster IP p50 | cluster IP p99 | p50 vs direct |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		for i, n := range []int{10, benchServices} {
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %+.0f%% |\n", r.mode, n, us(r.direct[i].p50), us(r.direct[i].p99),
				us(r.vip[i].p50), us(r.vip[i].p99), 100*(float64(r.vip[i].p50)/float64(r.direct[i].p50)-1))
		}
	}
	return b.String()
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}
