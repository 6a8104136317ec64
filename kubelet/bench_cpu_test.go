//go:build bench

package kubelet

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hoist-project/hoist/internal/benchstat"
	"github.com/hoist-project/hoist/kubelet/runtime/crilog"
)

// cpuGroup names who a process's CPU during the batch belongs to.
func cpuGroup(p benchstat.Proc, children bool) string {
	isLogDriver := len(p.Args) == 3 && strings.HasPrefix(p.Args[2], crilog.DriverFlag)
	hoist := len(p.Args) > 1 && strings.HasSuffix(p.Args[0], "/hoist")
	switch {
	case isLogDriver && !children:
		return "logging drivers (one per container)"
	case hoist && p.Args[1] == "kubelet":
		if children {
			return "CNI plugins (the kubelet's children)"
		}
		return "hoist kubelet"
	case hoist && p.Args[1] == "master" && !children:
		return "hoist master (API server, embedded etcd)"
	case p.Comm == "containerd":
		if children {
			return "containerd's children (shim start-up)"
		}
		return "containerd"
	case p.Comm == "containerd-shim":
		if children {
			return "runc (the shims' children)"
		}
		return "containerd-shim-runc-v2"
	case (p.Comm == "pause" || p.Comm == "testbox") && !children:
		return "the pods' own processes"
	case len(p.Args) == 1 && p.Args[0] == "" && !children: // kernel threads have no command line
		return "kernel threads (network, writeback, RCU)"
	case len(p.Args) > 0 && p.Args[0] == os.Args[0] && !children:
		return "benchmark client"
	}
	return ""
}

// cpuTable renders CPU per group over a batch of n pods, largest first.
func cpuTable(cpu map[string]time.Duration, n int, wall time.Duration) string {
	type row struct {
		name string
		d    time.Duration
	}
	var rows []row
	var total time.Duration
	for name, d := range cpu {
		if d > 0 {
			rows = append(rows, row{name, d})
			total += d
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].d > rows[j].d })
	var b strings.Builder
	fmt.Fprintf(&b, "| process | CPU | per pod |\n|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %.2f s | %.1f ms |\n", r.name, r.d.Seconds(), float64(r.d.Microseconds())/1000/float64(n))
	}
	fmt.Fprintf(&b, "| **all of the above** | **%.2f s** (%.2f cores over %.2f s) | **%.1f ms** |\n",
		total.Seconds(), total.Seconds()/wall.Seconds(), wall.Seconds(), float64(total.Microseconds())/1000/float64(n))
	return b.String()
}

// runtimeGroups are the CPU groups of the container runtime the kubelet
// drives: what a pod start costs before any of hoist's own code.
var runtimeGroups = []string{"containerd", "containerd's children (shim start-up)",
	"containerd-shim-runc-v2", "runc (the shims' children)"}

// runtimeFloor says what the runtime's CPU alone means for the batch: the
// shortest time n pod starts could take on this machine's CPUs.
func runtimeFloor(cpu map[string]time.Duration, n int) string {
	var d time.Duration
	for _, g := range runtimeGroups {
		d += cpu[g]
	}
	cpus := runtime.NumCPU()
	return fmt.Sprintf("The container runtime alone (containerd, shim start-ups, shims, runc) used %.1f ms of CPU per pod: "+
		"on %d CPUs, %d pod starts take at least %.2f s before any of hoist's own work, and the batch's median pod "+
		"at least %.2f s.", float64(d.Microseconds())/1000/float64(n), cpus, n, d.Seconds()/float64(cpus), d.Seconds()/float64(cpus)/2)
}

// memoryOf sums anonymous and total RSS over the processes in group.
func memoryOf(s benchstat.Snapshot, group string) (procs int, anonKiB, rssKiB int64) {
	for pid, p := range s {
		if cpuGroup(p, false) != group {
			continue
		}
		a, err1 := benchstat.StatusKiB(pid, "RssAnon")
		r, err2 := benchstat.StatusKiB(pid, "VmRSS")
		if err1 == nil && err2 == nil {
			procs, anonKiB, rssKiB = procs+1, anonKiB+a, rssKiB+r
		}
	}
	return procs, anonKiB, rssKiB
}

// waitKernelQuiet waits (up to a minute) until kernel threads use under 5%
// of a core over a second: deleting 100 pods leaves the kernel tearing down
// 100 network namespaces for a while after every container is gone, work
// that would otherwise be billed to the next measurement.
func waitKernelQuiet(t *testing.T) {
	kernel := func(p benchstat.Proc, children bool) string {
		if !children && len(p.Args) == 1 && p.Args[0] == "" {
			return "kernel"
		}
		return ""
	}
	prev := benchstat.Processes()
	waitFor(t, time.Minute, "kernel threads quiet after the pods' teardown", func() (bool, string) {
		time.Sleep(time.Second) // the measurement window
		cur := benchstat.Processes()
		used := cur.CPUSince(prev, kernel)["kernel"]
		prev = cur
		return used < 50*time.Millisecond, fmt.Sprintf("kernel threads used %s in the last second", used)
	})
}
