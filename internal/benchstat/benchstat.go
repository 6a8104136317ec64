// Package benchstat holds the few measurements hoist's benchmark reports
// share: nearest-rank percentiles and a process's CPU and memory from /proc.
package benchstat

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Percentile is the nearest-rank p-th percentile (0 < p <= 100) of d, which
// it does not modify; 0 for no samples.
func Percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(min(i, len(s))-1, 0)]
}

// userHZ is the unit of /proc/PID/stat's times (USER_HZ, 100 on Linux).
const userHZ = 100

// CPUTicks is a process's utime+stime in USER_HZ ticks.
func CPUTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	// The command name may hold spaces: fields count from after its ')'.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64) // field 14 utime
	k, err2 := strconv.ParseInt(f[12], 10, 64) // field 15 stime
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime %q %q", pid, f[11], f[12])
	}
	return u + k, nil
}

// StatusKiB reads a "Field:   N kB" line of /proc/PID/status (VmRSS, VmHWM, RssAnon…).
func StatusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// Sample measures a process's average CPU (in cores) over d and its RSS
// (KiB) at the end.
func Sample(pid int, d time.Duration) (cores float64, rssKiB int64, err error) {
	t0 := time.Now()
	c0, err := CPUTicks(pid)
	if err != nil {
		return 0, 0, err
	}
	time.Sleep(d) // the measurement window itself, not a synchronisation
	c1, err := CPUTicks(pid)
	if err != nil {
		return 0, 0, err
	}
	cores = float64(c1-c0) / userHZ / time.Since(t0).Seconds()
	rssKiB, err = StatusKiB(pid, "VmRSS")
	return cores, rssKiB, err
}

// LoadAvg is the machine's 1, 5 and 15 minute load averages as
// /proc/loadavg prints them ("unknown" when unreadable): reports record it
// because the machine is shared and latencies grow with its load.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
