package fabric_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/vishvananda/netlink"

	"github.com/hoist-project/hoist/internal/fabric"
	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/internal/testenv"
)

// TestIntegrationFabric builds a 3-node fabric, checks every node reaches
// every other node and the root namespace reaches every node over TCP, that
// nodes have no default route, and that Destroy leaves nothing behind.
func TestIntegrationFabric(t *testing.T) {
	f := testenv.Fabric(t, 3)
	nodes := f.Nodes()
	if len(nodes) != 3 {
		t.Fatalf("got %d nodes, want 3", len(nodes))
	}
	ctx := context.Background()
	for _, n := range nodes {
		if !f.Subnet().Contains(n.IP) || n.IP == f.HostIP() {
			t.Fatalf("node %s has IP %s: want a unique address in %s", n.Name, n.IP, f.Subnet())
		}
		assertNoDefaultRoute(t, f, n)
		out, err := f.Exec(ctx, n, "ip", "-o", "link", "show", "eth0")
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("mtu %d", f.MTU()); !strings.Contains(string(out), want) || !strings.Contains(string(out), "UP") {
			t.Errorf("node %s eth0: %s; want UP and %s", n.Name, out, want)
		}
	}

	// Each node serves its own name; reaching the right name proves the path.
	addrs := map[string]string{}
	for _, n := range nodes {
		addrs[n.Name] = serveName(t, f, n)
	}
	for _, from := range nodes {
		for _, to := range nodes {
			if from.Name == to.Name {
				continue
			}
			var got string
			err := f.Do(from, func() (err error) { got, err = readName(addrs[to.Name]); return err })
			if err != nil || got != to.Name {
				t.Errorf("%s -> %s (%s): got %q, %v", from.Name, to.Name, addrs[to.Name], got, err)
			}
		}
		// The root namespace (this test's own threads) reaches every node.
		if got, err := readName(addrs[from.Name]); err != nil || got != from.Name {
			t.Errorf("root -> %s (%s): got %q, %v", from.Name, addrs[from.Name], got, err)
		}
	}
	assertRootRoutes(t, f)

	// Another process finds the fabric through its state file.
	opened, err := fabric.Open("", f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(opened.State()), fmt.Sprint(f.State()); got != want {
		t.Errorf("Open: state %s, want %s", got, want)
	}
	st := f.State()
	if err := opened.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, st)
}

// assertNoDefaultRoute checks the node has no default route (v4 or v6).
func assertNoDefaultRoute(t *testing.T, f *fabric.Fabric, n fabric.Node) {
	t.Helper()
	err := f.Do(n, func() error {
		routes, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Dst == nil {
				return fmt.Errorf("default route %s", r)
			}
			if ones, _ := r.Dst.Mask.Size(); ones == 0 {
				return fmt.Errorf("default route %s", r)
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("node %s: %v", n.Name, err)
	}
}

// assertRootRoutes checks that the fabric added exactly its connected route
// to the root namespace.
func assertRootRoutes(t *testing.T, f *fabric.Fabric) {
	t.Helper()
	l, err := netlink.LinkByName(f.State().HostLink)
	if err != nil {
		t.Fatalf("root link: %v", err)
	}
	routes, err := netlink.RouteList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 1 || routes[0].Dst == nil || routes[0].Dst.String() != f.Subnet().String() {
		t.Errorf("root link %s routes: %v; want only the connected route %s", l.Attrs().Name, routes, f.Subnet())
	}
}

// serveName listens on node's address inside its namespace and answers every
// connection with the node's name. It returns the listening address.
func serveName(t *testing.T, f *fabric.Fabric, n fabric.Node) string {
	t.Helper()
	var ln net.Listener
	err := f.Do(n, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(n.IP, 0).String())
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", n.Name, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, n.Name+"\n")
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// readName dials addr and returns the first line it answers.
func readName(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// assertNothingLeft checks that no namespace, root link or state file of the
// fabric remains, and no mount of its namespaces.
func assertNothingLeft(t *testing.T, st fabric.State) {
	t.Helper()
	names, err := nsutil.ListNamed()
	if err != nil {
		t.Fatal(err)
	}
	prefix := fabric.NetnsPrefix + st.Name + "-"
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			t.Errorf("netns %s left behind", n)
		}
	}
	if _, err := netlink.LinkByName(st.HostLink); err == nil {
		t.Errorf("root link %s left behind", st.HostLink)
	}
	if _, err := os.Stat(fabric.DefaultStateDir + "/" + st.Name + ".json"); !os.IsNotExist(err) {
		t.Errorf("state file of %s left behind (stat: %v)", st.Name, err)
	}
	// Mountinfo shows resolved paths (/var/run is usually a symlink to /run).
	dir, err := filepath.EvalSymlinks(nsutil.NamedDir)
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		if strings.HasPrefix(filepath.Base(m.Mountpoint), prefix) {
			t.Errorf("mount %s left behind", m.Mountpoint)
		}
	}
}

// TestIntegrationFabricSubnets checks that concurrent fabrics get disjoint
// subnets and that an explicit subnet overlapping a root route is refused
// before anything is created.
func TestIntegrationFabricSubnets(t *testing.T) {
	a, b := testenv.Fabric(t, 1), testenv.Fabric(t, 1)
	if a.Subnet().Overlaps(b.Subnet()) {
		t.Fatalf("fabrics %s and %s overlap: %s, %s", a.Name(), b.Name(), a.Subnet(), b.Subnet())
	}
	name := testenv.UniqueName("t")
	_, err := fabric.Create(context.Background(), fabric.Config{Name: name, Nodes: 1, Subnet: a.Subnet()})
	if err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Fatalf("Create on %s's subnet %s: err %v, want an overlap error", a.Name(), a.Subnet(), err)
	}
	assertNothingLeft(t, fabric.State{Name: name, HostLink: fabric.LinkPrefix + name})
}
