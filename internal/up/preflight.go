package up

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hoist-project/hoist/internal/cni/nodeconf"
)

// route is the part of a kernel route the overlap check needs.
type route struct {
	dst  *net.IPNet
	link string
}

func (r route) String() string { return fmt.Sprintf("%s dev %s", r.dst, r.link) }

// checkRoutes refuses CIDRs that overlap an existing route, except routes on
// hoist up's own bridge and flanneld's VXLAN device (left behind by a
// previous run whose pods it adopts).
// Default routes cover everything and are not conflicts. cidrs maps the flag
// that sets a range to its value.
func checkRoutes(routes []route, cidrs map[string]string) error {
	for _, name := range sortedKeys(cidrs) {
		_, n, err := net.ParseCIDR(cidrs[name])
		if err != nil {
			return fmt.Errorf("%s %q: %w", name, cidrs[name], err)
		}
		for _, r := range routes {
			if r.dst == nil || r.link == nodeconf.BridgeName || strings.HasPrefix(r.link, "flannel.") {
				continue
			}
			if ones, _ := r.dst.Mask.Size(); ones == 0 {
				continue
			}
			if r.dst.Contains(n.IP) || n.Contains(r.dst.IP) {
				return fmt.Errorf("%s %s overlaps the existing route %s: choose another range with %s", name, n, r, name)
			}
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// hostRoutes lists the IPv4 routes of the current network namespace.
func hostRoutes() ([]route, error) {
	rs, err := netlink.RouteList(nil, netlink.FAMILY_V4) // main table
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	out := make([]route, 0, len(rs))
	for _, r := range rs {
		if r.Type != unix.RTN_UNICAST {
			continue // local, broadcast: the host's own addresses, not networks
		}
		name := strconv.Itoa(r.LinkIndex)
		if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
			name = l.Attrs().Name
		}
		out = append(out, route{dst: r.Dst, link: name})
	}
	return out, nil
}

// checkPorts refuses when a TCP address it must listen on is taken, naming
// the process that holds it when /proc tells.
func checkPorts(addrs map[string]string) error {
	for _, what := range sortedKeys(addrs) {
		addr := addrs[what]
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
			continue
		}
		_, port, _ := net.SplitHostPort(addr)
		holder := ""
		if p, perr := strconv.Atoi(port); perr == nil {
			if owner := listenerProcess(p); owner != "" {
				holder = " (held by " + owner + ")"
			}
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%s port %s is already in use%s: stop that process or pick another address", what, port, holder)
		}
		return fmt.Errorf("%s address %s cannot be bound: %w", what, addr, err)
	}
	return nil
}

// listenerProcess names "comm[pid]" of the process listening on TCP port,
// or "" when it cannot be found (another netns, no permission).
func listenerProcess(port int) string {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 || fs[3] != "0A" { // 0A = LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(fs[1], ":")
			if p, err := strconv.ParseInt(hexPort, 16, 32); err == nil && int(p) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return ""
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range procs {
		if target, err := os.Readlink(fd); err == nil && inodes[target] {
			pidDir := filepath.Dir(filepath.Dir(fd))
			comm, _ := os.ReadFile(filepath.Join(pidDir, "comm"))
			return fmt.Sprintf("%s[%s]", strings.TrimSpace(string(comm)), filepath.Base(pidDir))
		}
	}
	return ""
}
