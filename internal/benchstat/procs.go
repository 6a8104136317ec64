package benchstat

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Proc is one process's CPU so far: its own, and that of its children it
// has waited for (a short-lived helper's CPU lands in its parent's).
type Proc struct {
	Comm     string // kernel workers rename themselves after the work at hand
	Started  int64  // clock ticks after boot: tells a reused pid apart
	Args     []string
	Self     time.Duration
	Children time.Duration
}

// Snapshot is every process's CPU at one moment, by pid.
type Snapshot map[int]Proc

// Processes reads /proc; processes that vanish while it reads are left out.
func Processes() Snapshot {
	s := Snapshot{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if p, err := readProc(pid); err == nil {
			s[pid] = p
		}
	}
	return s
}

func readProc(pid int) (Proc, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Proc{}, err
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return Proc{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[end+2:]) // f[0] is field 3 (state)
	if len(f) < 20 {
		return Proc{}, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	var t [4]int64 // utime, stime, cutime, cstime (fields 14-17)
	for i := range t {
		if t[i], err = strconv.ParseInt(f[11+i], 10, 64); err != nil {
			return Proc{}, fmt.Errorf("/proc/%d/stat: field %d: %w", pid, 14+i, err)
		}
	}
	started, err := strconv.ParseInt(f[19], 10, 64) // field 22 starttime
	if err != nil {
		return Proc{}, fmt.Errorf("/proc/%d/stat: starttime: %w", pid, err)
	}
	args, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return Proc{
		Comm:     s[open+1 : end],
		Started:  started,
		Args:     strings.Split(strings.TrimRight(string(args), "\x00"), "\x00"),
		Self:     ticks(t[0] + t[1]),
		Children: ticks(t[2] + t[3]),
	}, nil
}

func ticks(n int64) time.Duration { return time.Duration(n) * time.Second / userHZ }

// CPUSince is the CPU each group of processes used between before and s.
// group names a process (return "" to leave it out) and is asked once for
// its own CPU and once, with children set, for its waited-for children's.
// A pid reused by a new process counts from zero.
func (s Snapshot) CPUSince(before Snapshot, group func(p Proc, children bool) string) map[string]time.Duration {
	out := map[string]time.Duration{}
	for pid, p := range s {
		b, ok := before[pid]
		if !ok || b.Started != p.Started {
			b = Proc{}
		}
		if g := group(p, false); g != "" {
			out[g] += p.Self - b.Self
		}
		if g := group(p, true); g != "" {
			out[g] += p.Children - b.Children
		}
	}
	return out
}
