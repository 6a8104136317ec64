package flannel_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hoist-project/hoist/flannel/subnetenv"
	"github.com/hoist-project/hoist/internal/fabric"
	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/internal/testenv"
)

// TestIntegrationFabric runs flanneld (the built binary) on a 3-node netns
// fabric for each backend and both subnet managers, with pods attached by
// the flannel CNI plugin, and checks the data path end to end: distinct
// subnets, pod-to-pod TCP and UDP without masquerade, node-to-pod,
// masquerade to the outside, a kill -9 restart that keeps the subnet,
// writes nothing and keeps a TCP connection, repair of entries deleted by
// hand, removal of a deleted node's entries, and an etcd outage that leaves
// the data path alone (leases renewed and the watch resumed afterwards).
func TestIntegrationFabric(t *testing.T) {
	testenv.RequireCommand(t, "iptables-restore", "iptables")
	testenv.RequireCommand(t, "bridge", "iproute2")
	for _, tc := range []struct {
		mgr, backend string
		direct       bool // vxlan DirectRouting (the data path only: it is store-independent)
	}{
		{mgr: "etcd", backend: "vxlan"},
		{mgr: "etcd", backend: "host-gw"},
		{mgr: "etcd", backend: "vxlan", direct: true},
		{mgr: "kube", backend: "vxlan"},
		{mgr: "kube", backend: "host-gw"},
	} {
		name := tc.mgr + "/" + tc.backend
		if tc.direct {
			name += "-direct-routing"
		}
		t.Run(name, func(t *testing.T) {
			f := testenv.Fabric(t, 3)
			var s store
			if tc.mgr == "etcd" {
				backend := fmt.Sprintf(`{"Type":%q}`, tc.backend)
				if tc.direct {
					backend = `{"Type":"vxlan","DirectRouting":true}`
				}
				s = newEtcdStore(t, f, backend)
			} else {
				s = newKubeStore(t, f, tc.backend)
			}
			fabricScenario(t, f, s, tc.backend, tc.direct)
		})
	}
}

// cluster is one scenario's running fabric.
type cluster struct {
	f       *fabric.Fabric
	s       store
	backend string
	nodes   []fabric.Node
	daemons []*flanneld
	envs    []subnetenv.Env
	pods    []pod
}

func fabricScenario(t *testing.T, f *fabric.Fabric, s store, backend string, direct bool) {
	c := &cluster{f: f, s: s, backend: backend, nodes: f.Nodes()}
	c.start(t)
	c.checkDataPath(t, direct)
	if direct {
		return
	}
	c.checkRestartAndRepair(t)
	c.checkNodeRemoval(t)
	c.checkEtcdOutage(t)
}

// start runs flanneld on every node, checks subnets and leases, and
// attaches one pod per node serving TCP and UDP.
func (c *cluster) start(t *testing.T) {
	c.daemons = make([]*flanneld, len(c.nodes))
	c.envs = make([]subnetenv.Env, len(c.nodes))
	for i, n := range c.nodes {
		mustExec(t, c.f, n, "ip", "link", "set", "lo", "up") // the health server listens on loopback
		c.daemons[i] = newFlanneld(t, c.f, n, c.s.flags(t, n)...)
		c.daemons[i].Start()
	}
	wantMTU := c.f.MTU()
	if c.backend == "vxlan" { // DirectRouting too: peers off the L2 still need the overlay
		wantMTU -= 50
	}
	seen := map[netip.Prefix]string{}
	for i, d := range c.daemons {
		c.envs[i] = d.Env()
		if other, dup := seen[c.envs[i].Subnet]; dup {
			t.Fatalf("%s and %s both got subnet %s", other, c.nodes[i].Name, c.envs[i].Subnet)
		}
		seen[c.envs[i].Subnet] = c.nodes[i].Name
		if c.envs[i].MTU != wantMTU || !c.envs[i].IPMasq || c.envs[i].Network.String() != "10.244.0.0/16" {
			t.Fatalf("%s subnet.env %+v, want MTU %d, masquerade, network 10.244.0.0/16", c.nodes[i].Name, c.envs[i], wantMTU)
		}
		c.s.checkLease(t, c.nodes[i], c.envs[i])
		d.WaitHealthy()
	}
	c.pods = make([]pod, len(c.nodes))
	for i, n := range c.nodes {
		c.pods[i] = addPod(t, c.f, n, c.daemons[i].subnetFile)
		if !c.envs[i].Subnet.Contains(c.pods[i].IP) {
			t.Fatalf("pod on %s got %s, outside the node's subnet %s", n.Name, c.pods[i].IP, c.envs[i].Subnet)
		}
		serveRemoteAddr(t, c.pods[i].Path)
		serveUDPRemoteAddr(t, c.pods[i].Path)
	}
}

// checkDataPath: pod to pod (TCP, UDP) keeps pod IPs in every direction,
// routes have the documented shape, nodes reach remote pods, host-gw
// refuses an off-L2 peer, and pod-to-outside is masqueraded.
func (c *cluster) checkDataPath(t *testing.T, direct bool) {
	pods, nodes := c.pods, c.nodes
	for i := range pods {
		for j := range pods {
			if i == j {
				continue
			}
			testenv.WaitFor(t, 20*time.Second, fmt.Sprintf("TCP pod %d -> pod %d unmasqueraded", i, j), func() error {
				return expectSeenAs(pods[i].Path, pods[j].IP, pods[i].IP.String())
			})
			testenv.WaitFor(t, 5*time.Second, fmt.Sprintf("UDP pod %d -> pod %d unmasqueraded", i, j), func() error {
				got, err := udpSeenAs(pods[i].Path, pods[j].IP)
				if err == nil && got != pods[i].IP.String() {
					err = fmt.Errorf("server saw %s, want %s", got, pods[i].IP)
				}
				return err
			})
		}
	}
	s1 := c.envs[1].Subnet.Masked()
	wantRoute := fmt.Sprintf("%s via %s dev flannel.1 proto 78 onlink", s1, s1.Addr())
	if c.backend == "host-gw" || direct {
		wantRoute = fmt.Sprintf("%s via %s dev eth0 proto 78", s1, nodes[1].IP)
	}
	if got := strings.TrimSpace(mustExec(t, c.f, nodes[0], "ip", "route", "show", s1.String())); got != wantRoute {
		t.Fatalf("route on n0: %q, want %q", got, wantRoute)
	}
	for i, n := range nodes {
		p := pods[(i+1)%len(pods)]
		testenv.WaitFor(t, 5*time.Second, n.Name+" -> remote pod", func() error {
			_, err := seenAs(n.NetnsPath, p.IP)
			return err
		})
	}
	if c.backend == "host-gw" {
		c.checkOffL2Peer(t)
	}
	// A pod reaching an outside network (attached to n0 only) shows up as n0.
	outside := addOutside(t, c.f, nodes[0])
	serveRemoteAddr(t, outside)
	testenv.WaitFor(t, 10*time.Second, "pod 0 -> outside masqueraded", func() error {
		return expectSeenAs(pods[0].Path, netip.MustParseAddr("192.168.250.2"), "192.168.250.1")
	})
}

// checkOffL2Peer: host-gw refuses a peer behind a router, clearly (log and
// metric), and keeps the others.
func (c *cluster) checkOffL2Peer(t *testing.T) {
	n0 := c.nodes[0]
	mustExec(t, c.f, n0, "ip", "route", "add", "192.0.2.0/24", "via", c.nodes[1].IP.String())
	far := netip.MustParsePrefix("10.244.240.0/24")
	c.s.addPeer(t, "far", far, netip.MustParseAddr("192.0.2.10"), "host-gw")
	testenv.WaitFor(t, 10*time.Second, "L2 error on n0", func() error {
		log, _ := os.ReadFile(c.daemons[0].logPath)
		if !strings.Contains(string(log), "peer 192.0.2.10 (subnet 10.244.240.0/24) is not on the same L2 segment") {
			return fmt.Errorf("no L2 error in the log")
		}
		if n := c.daemons[0].Metric(`hoist_flannel_backend_errors_total{kind="unreachable-peer"}`); n == 0 {
			return fmt.Errorf("unreachable-peer errors not counted")
		}
		return nil
	})
	if routes := mustExec(t, c.f, n0, "ip", "route", "show", "proto", "78"); strings.Contains(routes, "10.244.240.0") || !strings.Contains(routes, c.envs[1].Subnet.Masked().String()) {
		t.Fatalf("routes with an off-L2 peer:\n%s", routes)
	}
	c.s.removeNode(t, "far", far)
}

// checkRestartAndRepair: kill -9 and restart keeps the subnet, writes
// nothing and keeps a TCP connection; entries deleted (and added) by hand
// are repaired; a deleted VXLAN device is recreated.
func (c *cluster) checkRestartAndRepair(t *testing.T) {
	f, nodes, pods, envs, daemons := c.f, c.nodes, c.pods, c.envs, c.daemons
	conn := c.longConn(t)
	for _, i := range []int{0, 1} {
		daemons[i].Kill()
		daemons[i].Start()
		if env := daemons[i].Env(); env.Subnet != envs[i].Subnet {
			t.Fatalf("%s: subnet %s after restart, had %s", nodes[i].Name, env.Subnet, envs[i].Subnet)
		}
		daemons[i].WaitHealthy()
		if n := daemons[i].Metric("hoist_flannel_applied_entries_total"); n != 0 {
			t.Fatalf("%s: restart with nothing changed wrote %v kernel entries", nodes[i].Name, n)
		}
	}
	c.expectConn(t, conn, "across flanneld restarts")

	s2 := envs[2].Subnet.Masked().String()
	if c.backend == "vxlan" {
		mac := fdbMAC(t, f, nodes[1], nodes[2].IP)
		mustExec(t, f, nodes[1], "bridge", "fdb", "del", mac, "dev", "flannel.1", "dst", nodes[2].IP.String())
	}
	mustExec(t, f, nodes[1], "ip", "route", "del", s2)
	mustExec(t, f, nodes[1], "ip", "route", "add", "10.244.250.0/24", "via", nodes[2].IP.String(), "proto", "78")
	const jump = "-m comment --comment \"hoist flannel: masquerade traffic leaving the cluster\" -j HOIST-FLANNEL-POSTRTG"
	mustExec(t, f, nodes[1], "sh", "-c", "iptables -t nat -D POSTROUTING "+jump)
	testenv.WaitFor(t, 10*time.Second, "repair on n1", func() error {
		routes := mustExec(t, f, nodes[1], "ip", "route", "show", "proto", "78")
		if !strings.Contains(routes, s2) || strings.Contains(routes, "10.244.250.0/24") {
			return fmt.Errorf("owned routes:\n%s", routes)
		}
		if c.backend == "vxlan" && !strings.Contains(mustExec(t, f, nodes[1], "bridge", "fdb", "show", "dev", "flannel.1"), "dst "+nodes[2].IP.String()) {
			return fmt.Errorf("fdb entry for %s missing", nodes[2].IP)
		}
		if !strings.Contains(mustExec(t, f, nodes[1], "iptables-save", "-t", "nat"), "-A POSTROUTING "+jump) {
			return fmt.Errorf("masquerade jump missing")
		}
		return nil
	})
	want := 3.0 // route add, route delete, iptables
	if c.backend == "vxlan" {
		want++ // the FDB entry
		if n := daemons[1].Metric(`hoist_flannel_repaired_entries_total{kind="fdb",op="add"}`); n < 1 {
			t.Fatalf("repaired FDB entries %v, want >= 1", n)
		}
	}
	if n := daemons[1].Metric("hoist_flannel_repaired_entries_total"); n < want {
		t.Fatalf("repaired entries metric %v, want >= %v", n, want)
	}
	testenv.WaitFor(t, 5*time.Second, "pod 1 -> pod 2 after repair", func() error {
		return expectSeenAs(pods[1].Path, pods[2].IP, pods[1].IP.String())
	})

	if c.backend == "vxlan" {
		mustExec(t, f, nodes[1], "ip", "link", "del", "flannel.1")
		testenv.WaitFor(t, 10*time.Second, "flannel.1 recreated on n1", func() error {
			return expectSeenAs(pods[1].Path, pods[2].IP, pods[1].IP.String())
		})
		if got := strings.TrimSpace(mustExec(t, f, nodes[1], "ip", "route", "show", envs[0].Subnet.Masked().String())); !strings.Contains(got, "dev flannel.1 proto 78 onlink") {
			t.Fatalf("route after recreation: %q", got)
		}
	}
}

// checkNodeRemoval: a removed node (lease or Node deleted) disappears from
// every other node, and only it.
func (c *cluster) checkNodeRemoval(t *testing.T) {
	s2 := c.envs[2].Subnet.Masked()
	c.daemons[2].Kill()
	c.s.removeNode(t, c.nodes[2].Name, s2)
	for _, n := range c.nodes[:2] {
		testenv.WaitFor(t, 5*time.Second, "n2 removed from "+n.Name, func() error {
			return c.peerProgrammed(t, n, s2, c.nodes[2].IP, false)
		})
	}
	if err := expectSeenAs(c.pods[1].Path, c.pods[0].IP, c.pods[1].IP.String()); err != nil {
		t.Fatalf("n1 -> n0 after n2 left: %v", err)
	}
}

// checkEtcdOutage: with the store's etcd down the data path stays (a
// long-running connection and new connections work, resyncs go on); when
// it returns, leases are renewed and the watch delivers a new peer.
func (c *cluster) checkEtcdOutage(t *testing.T) {
	d0 := c.daemons[0]
	conn := c.longConn(t)
	expiry := d0.Metric("hoist_flannel_lease_expiry_timestamp_seconds")
	resyncs := d0.Metric("hoist_flannel_resyncs_total")
	c.s.etcd().Stop()
	testenv.WaitFor(t, 15*time.Second, "3 resyncs during the etcd outage", func() error {
		if n := d0.Metric("hoist_flannel_resyncs_total"); n < resyncs+3 {
			return fmt.Errorf("%v resyncs", n-resyncs)
		}
		return nil
	})
	c.expectConn(t, conn, "during the etcd outage")
	if err := expectSeenAs(c.pods[0].Path, c.pods[1].IP, c.pods[0].IP.String()); err != nil {
		t.Fatalf("pod 0 -> pod 1 during the etcd outage: %v", err)
	}
	c.s.etcd().Restart()
	if c.s.renewsWithinTest() {
		testenv.WaitFor(t, 20*time.Second, "lease renewed after the outage", func() error {
			if e := d0.Metric("hoist_flannel_lease_expiry_timestamp_seconds"); e <= expiry {
				return fmt.Errorf("expiry still %v", e)
			}
			return nil
		})
	}
	// The freed address of n2 now belongs to a newcomer the watch must deliver.
	late := netip.MustParsePrefix("10.244.241.0/24")
	c.s.addPeer(t, "late", late, c.nodes[2].IP, c.backend)
	for _, n := range c.nodes[:2] {
		testenv.WaitFor(t, 30*time.Second, "a peer added after the outage on "+n.Name, func() error {
			return c.peerProgrammed(t, n, late, c.nodes[2].IP, true)
		})
	}
	c.expectConn(t, conn, "after the etcd outage")
	for _, d := range c.daemons[:2] {
		d.WaitHealthy()
	}
}

// peerProgrammed reports whether node n has (want) or lacks (!want) the
// route and, for vxlan, the FDB entry of the peer with subnet sn at ip.
func (c *cluster) peerProgrammed(t *testing.T, n fabric.Node, sn netip.Prefix, ip netip.Addr, want bool) error {
	route := strings.Contains(mustExec(t, c.f, n, "ip", "route", "show", "proto", "78"), sn.String())
	fdb := c.backend != "vxlan" || strings.Contains(mustExec(t, c.f, n, "bridge", "fdb", "show", "dev", "flannel.1"), "dst "+ip.String())
	if want && (!route || !fdb) {
		return fmt.Errorf("route to %s: %v, FDB entry to %s: %v", sn, route, ip, fdb)
	}
	if !want && (route || (c.backend == "vxlan" && fdb)) {
		return fmt.Errorf("route to %s still there: %v, FDB entry to %s: %v", sn, route, ip, fdb)
	}
	return nil
}

// longConn opens a TCP connection from pod 1 to pod 0, closed when t ends.
func (c *cluster) longConn(t *testing.T) net.Conn {
	conn, err := dial(c.pods[1].Path, c.pods[0].IP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c.expectConn(t, conn, "when opened")
	return conn
}

func (c *cluster) expectConn(t *testing.T, conn net.Conn, when string) {
	t.Helper()
	if got, err := ask(conn); err != nil || got != c.pods[1].IP.String() {
		t.Fatalf("long-running connection %s: %q, %v", when, got, err)
	}
}

func expectSeenAs(from string, to netip.Addr, want string) error {
	got, err := seenAs(from, to)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("server at %s saw %s, want %s", to, got, want)
	}
	return nil
}

// addOutside attaches a namespace outside the cluster CIDR to node:
// 192.168.250.1 on the node, 192.168.250.2 outside, no route back to pods.
func addOutside(t *testing.T, f *fabric.Fabric, node fabric.Node) string {
	t.Helper()
	name := fabric.NetnsPrefix + f.Name() + "-out"
	path, err := nsutil.CreateNamed(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nsutil.DeleteNamed(name) })
	mustExec(t, f, node, "ip", "link", "add", "hoist-out", "type", "veth", "peer", "name", "eth0", "netns", name)
	mustExec(t, f, node, "ip", "addr", "add", "192.168.250.1/30", "dev", "hoist-out")
	mustExec(t, f, node, "ip", "link", "set", "hoist-out", "up")
	for _, argv := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "addr", "add", "192.168.250.2/30", "dev", "eth0"},
		{"ip", "link", "set", "eth0", "up"},
	} {
		runIn(t, path, argv...)
	}
	return path
}

// fdbMAC returns the MAC of node's FDB entry pointing at dst.
func fdbMAC(t *testing.T, f *fabric.Fabric, node fabric.Node, dst netip.Addr) string {
	t.Helper()
	for _, line := range strings.Split(mustExec(t, f, node, "bridge", "fdb", "show", "dev", "flannel.1"), "\n") {
		if strings.Contains(line, "dst "+dst.String()+" ") {
			return strings.Fields(line)[0]
		}
	}
	t.Fatalf("no fdb entry for %s on %s", dst, node.Name)
	return ""
}
