package ebpf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

// DefaultPinDir is where bpffs is expected (and mounted if it is not).
const DefaultPinDir = "/sys/fs/bpf/hoist"

// EnsureBPFFS makes dir a directory on a bpffs: it is used as is when it
// already is one, created inside a bpffs parent, or gets a bpffs mounted on
// it otherwise (for the default under /sys/fs/bpf, bpffs is mounted at
// /sys/fs/bpf first, as systemd does on most distributions).
func EnsureBPFFS(dir string) error {
	if isBPFFS(dir) {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent == "/sys/fs/bpf" && !isBPFFS(parent) {
		if err := unix.Mount("bpf", parent, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("ebpf: mount bpffs at %s: %w", parent, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("ebpf: pin directory: %w", err)
	}
	if isBPFFS(dir) {
		return nil
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("ebpf: mount bpffs at %s: %w", dir, err)
	}
	return nil
}

func isBPFFS(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.BPF_FS_MAGIC
}

// CgroupV2Root returns the mount point of the unified (v2) cgroup
// hierarchy from /proc/self/mountinfo: /sys/fs/cgroup on pure v2 hosts,
// /sys/fs/cgroup/unified on hybrid ones.
func CgroupV2Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	return cgroupV2Mount(f)
}

// cgroupV2Mount finds the first cgroup2 mount point in mountinfo text.
func cgroupV2Mount(mountinfo io.Reader) (string, error) {
	sc := bufio.NewScanner(mountinfo)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && len(fields) > 4 {
				return unescapeMountPath(fields[4]), nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("ebpf mode: no cgroup v2 hierarchy is mounted (mount -t cgroup2 none /sys/fs/cgroup/unified): %w", ebpf.ErrNotSupported)
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// CheckKernel names the first kernel feature the programs need that is
// missing; the error wraps ebpf.ErrNotSupported.
func CheckKernel() error {
	checks := []struct {
		name string
		fn   func() error
	}{
		{"BPF_PROG_TYPE_CGROUP_SOCK_ADDR (Linux 4.17)", func() error { return features.HaveProgramType(ebpf.CGroupSockAddr) }},
		{"BPF_PROG_TYPE_SCHED_CLS (tc)", func() error { return features.HaveProgramType(ebpf.SchedCLS) }},
		{"BPF_MAP_TYPE_LRU_HASH (Linux 4.10)", func() error { return features.HaveMapType(ebpf.LRUHash) }},
		{"bpf_get_netns_cookie in cgroup/connect4 (Linux 5.7)", func() error {
			return features.HaveProgramHelper(ebpf.CGroupSockAddr, asm.FnGetNetnsCookie)
		}},
		{"bpf_set_retval in cgroup/connect4 (Linux 5.18)", func() error {
			return features.HaveProgramHelper(ebpf.CGroupSockAddr, asm.FnSetRetval)
		}},
	}
	for _, c := range checks {
		if err := c.fn(); err != nil {
			if errors.Is(err, ebpf.ErrNotSupported) {
				return fmt.Errorf("ebpf mode: the kernel lacks %s; use --mode iptables: %w", c.name, err)
			}
			return fmt.Errorf("ebpf mode: probing %s: %w", c.name, err)
		}
	}
	return nil
}
