package bridge

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A Linux bridge without an explicitly set MAC takes the lowest MAC of its
// ports and changes it when that port leaves: every pod's neighbour entry
// for the gateway goes stale and the kernel flushes the bridge's own
// neighbour table (NETDEV_CHANGEADDR), so traffic of live pods sees
// "no route to host" for a moment. An explicitly set MAC (addr_assign_type
// NET_ADDR_SET) is never recalculated, so the plugin sets one.

// netAddrSet is NET_ADDR_SET from include/linux/netdevice.h.
const netAddrSet = 3

// stableMAC derives a bridge MAC from key: locally administered, unicast,
// the same for the same bridge and gateway (so a recreated bridge gets the
// MAC pods and neighbours knew) and different between nodes' pod subnets.
func stableMAC(key string) net.HardwareAddr {
	h := sha256.Sum256([]byte("hoist-bridge\x00" + key))
	mac := net.HardwareAddr(h[:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}

// macKey is what the bridge's MAC derives from: its name and the
// attachment's gateways (per node in a cluster), or the name alone.
func macKey(brName string, gws []net.IP) string {
	parts := []string{brName}
	for _, gw := range gws {
		if gw != nil {
			parts = append(parts, gw.String())
		}
	}
	return strings.Join(parts, "/")
}

// fixMAC makes the MAC of an existing bridge explicit, once. A bridge that
// already has want, or any explicitly set MAC (by hoist or an admin), is
// left alone. Otherwise a bridge without ports gets want; one with ports
// (live pods that resolved its current MAC) keeps its current MAC, now
// fixed, so nothing they cached changes.
func fixMAC(br netlink.Link, want net.HardwareAddr) (netlink.Link, error) {
	cur := br.Attrs().HardwareAddr
	if bytes.Equal(cur, want) {
		return br, nil
	}
	t, err := addrAssignType(br.Attrs().Name)
	if err == nil && t == netAddrSet {
		return br, nil
	}
	// Unknown type (no fsopen): setting the current MAC fixes it without
	// changing it, as upstream's bridge plugin does.
	mac := cur
	if err == nil && len(cur) == len(want) {
		ports, perr := hasPorts(br.Attrs().Index)
		if perr != nil {
			return nil, perr
		}
		if !ports {
			mac = want
		}
	}
	if err := netlink.LinkSetHardwareAddr(br, mac); err != nil {
		return nil, fmt.Errorf("set MAC %s: %w", mac, err)
	}
	return netlink.LinkByIndex(br.Attrs().Index)
}

func hasPorts(brIndex int) (bool, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return false, err
	}
	for _, l := range links {
		if l.Attrs().MasterIndex == brIndex {
			return true, nil
		}
	}
	return false, nil
}

// addrAssignType reads /sys/class/net/NAME/addr_assign_type of the calling
// thread's network namespace. The mounted /sys shows the namespace of
// whoever mounted it, so a private sysfs instance is created (fsopen +
// fsmount, Linux 5.2; never attached to any mount point) and read through
// its mount fd.
func addrAssignType(name string) (int, error) {
	fs, err := unix.Fsopen("sysfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return 0, fmt.Errorf("fsopen sysfs: %w", err)
	}
	defer unix.Close(fs)
	if err := unix.FsconfigCreate(fs); err != nil {
		return 0, fmt.Errorf("create sysfs: %w", err)
	}
	mnt, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOEXEC|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return 0, fmt.Errorf("fsmount sysfs: %w", err)
	}
	defer unix.Close(mnt)
	fd, err := unix.Openat(mnt, "class/net/"+name+"/addr_assign_type", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("addr_assign_type of %s: %w", name, err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 16)
	n, err := unix.Read(fd, buf)
	if err != nil {
		return 0, fmt.Errorf("addr_assign_type of %s: %w", name, err)
	}
	return strconv.Atoi(strings.TrimSpace(string(buf[:n])))
}
