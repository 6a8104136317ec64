package nodestatus

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MachineInfo is what does not change while the kubelet runs.
type MachineInfo struct {
	CPUs          int
	MemoryBytes   int64
	DiskBytes     int64 // filesystem of the kubelet's root dir
	KernelVersion string
	OSImage       string
	OS, Arch      string
	MachineID     string
	BootID        string
}

// Usage is the current pressure input.
type Usage struct {
	MemoryAvailable int64
	DiskAvailable   int64
	PIDs, PIDMax    int64
}

// Machine reads the host (Host in production, a fake in tests).
type Machine interface {
	Info() (MachineInfo, error)
	Usage() (Usage, error)
}

// Host reads /proc, /etc/os-release, uname and statfs of RootDir.
type Host struct {
	RootDir string
	Proc    string // default /proc
	Etc     string // default /etc
}

func (h Host) proc() string { return or(h.Proc, "/proc") }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Info implements Machine.
func (h Host) Info() (MachineInfo, error) {
	mi := MachineInfo{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	mem, err := meminfo(h.proc())
	if err != nil {
		return mi, err
	}
	mi.MemoryBytes = mem["MemTotal"]
	var st unix.Statfs_t
	if err := unix.Statfs(h.RootDir, &st); err != nil {
		return mi, fmt.Errorf("statfs %s: %w", h.RootDir, err)
	}
	mi.DiskBytes = int64(st.Blocks) * st.Bsize
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		mi.KernelVersion = unix.ByteSliceToString(u.Release[:])
	}
	mi.OSImage = osImage(or(h.Etc, "/etc") + "/os-release")
	mi.MachineID = readTrim(or(h.Etc, "/etc") + "/machine-id")
	mi.BootID = readTrim(h.proc() + "/sys/kernel/random/boot_id")
	return mi, nil
}

// Usage implements Machine.
func (h Host) Usage() (Usage, error) {
	var u Usage
	mem, err := meminfo(h.proc())
	if err != nil {
		return u, err
	}
	u.MemoryAvailable = mem["MemAvailable"]
	var st unix.Statfs_t
	if err := unix.Statfs(h.RootDir, &st); err != nil {
		return u, fmt.Errorf("statfs %s: %w", h.RootDir, err)
	}
	u.DiskAvailable = int64(st.Bavail) * st.Bsize
	u.PIDMax, _ = strconv.ParseInt(readTrim(h.proc()+"/sys/kernel/pid_max"), 10, 64)
	if ents, err := os.ReadDir(h.proc()); err == nil {
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err == nil {
				u.PIDs++
			}
		}
	}
	return u, nil
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// meminfo returns /proc/meminfo in bytes.
func meminfo(proc string) (map[string]int64, error) {
	b, err := os.ReadFile(proc + "/meminfo")
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		if len(f) == 3 && f[2] == "kB" {
			n *= 1024
		}
		out[strings.TrimSuffix(f[0], ":")] = n
	}
	return out, nil
}

// osImage returns PRETTY_NAME from os-release ("Unknown" without one).
func osImage(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "Unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			if s, err := strconv.Unquote(v); err == nil {
				return s
			}
			return strings.Trim(v, `"'`)
		}
	}
	return "Unknown"
}
