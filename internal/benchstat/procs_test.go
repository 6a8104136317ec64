package benchstat

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestProcessesSeesOwnChildrenCPU(t *testing.T) {
	before := Processes()
	self, ok := before[os.Getpid()]
	if !ok || len(self.Args) == 0 || self.Args[0] != os.Args[0] {
		t.Fatalf("own process missing or wrong args: %+v", self)
	}
	// A child that burns CPU, then is waited for: its time moves to us.
	if err := exec.Command("sh", "-c", `i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done`).Run(); err != nil {
		t.Fatal(err)
	}
	after := Processes()
	cpu := after.CPUSince(before, func(p Proc, children bool) string {
		if p.Args[0] != os.Args[0] {
			return ""
		}
		if children {
			return "children"
		}
		return "self"
	})
	if cpu["children"] < 10*time.Millisecond {
		t.Fatalf("a waited-for child's CPU: got %s, want at least 10ms (%v)", cpu["children"], cpu)
	}
	if cpu["self"] < 0 {
		t.Fatalf("own CPU went backwards: %v", cpu)
	}
}

func TestCPUSinceTellsReusedPidsFromRenames(t *testing.T) {
	before := Snapshot{7: {Comm: "old", Started: 100, Self: time.Second}, 8: {Comm: "kworker/0:1-events", Started: 5, Self: time.Second}}
	now := Snapshot{7: {Comm: "new", Started: 900, Self: 300 * time.Millisecond}, 8: {Comm: "kworker/0:1-mm", Started: 5, Self: 1100 * time.Millisecond}}
	got := now.CPUSince(before, func(p Proc, children bool) string {
		if children {
			return ""
		}
		return p.Comm
	})
	if got["new"] != 300*time.Millisecond || got["kworker/0:1-mm"] != 100*time.Millisecond || len(got) != 2 {
		t.Fatalf("got %v, want new=300ms (a new process on a reused pid) and kworker/0:1-mm=100ms (renamed, same process)", got)
	}
}
