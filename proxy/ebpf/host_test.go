package ebpf

import (
	"errors"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

func TestCgroupV2Mount(t *testing.T) {
	hybrid := `25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
33 25 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
34 33 0:29 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
35 33 0:30 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
`
	for _, c := range []struct{ name, in, want string }{
		{"hybrid", hybrid, "/sys/fs/cgroup/unified"},
		{"pure v2", "30 25 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw\n", "/sys/fs/cgroup"},
		{"optional fields and escapes", "30 25 0:26 / /mnt/my\\040cg rw shared:4 master:1 - cgroup2 none rw\n", "/mnt/my cg"},
	} {
		got, err := cgroupV2Mount(strings.NewReader(c.in))
		if err != nil || got != c.want {
			t.Errorf("%s: %q %v, want %q", c.name, got, err, c.want)
		}
	}
	if _, err := cgroupV2Mount(strings.NewReader("35 33 0:30 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n")); !errors.Is(err, ebpf.ErrNotSupported) {
		t.Errorf("v1 only: %v, want ErrNotSupported", err)
	}
}
