package flannel_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hoist-project/hoist/flannel/internal/etcdtest"
	"github.com/hoist-project/hoist/flannel/subnet"
	"github.com/hoist-project/hoist/flannel/subnetenv"
	"github.com/hoist-project/hoist/internal/fabric"
	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/internal/testenv"
)

// TestIntegrationFabric runs flanneld (the built binary, etcd subnet
// manager) on a 3-node netns fabric for each backend and checks the data
// path end to end: distinct subnets, pod-to-pod TCP without masquerade,
// masquerade to the outside, a restart that changes nothing and keeps a TCP
// connection, repair of entries deleted by hand, removal of a deleted
// node's entries, and an etcd outage that leaves the data path alone.
func TestIntegrationFabric(t *testing.T) {
	testenv.RequireCommand(t, "iptables-restore", "iptables")
	testenv.RequireCommand(t, "bridge", "iproute2")
	for _, tc := range []struct {
		name, backend string
		full          bool // the whole scenario, not only the data path
	}{
		{"vxlan", `{"Type":"vxlan"}`, true},
		{"host-gw", `{"Type":"host-gw"}`, true},
		{"vxlan-direct-routing", `{"Type":"vxlan","DirectRouting":true}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) { fabricScenario(t, tc.name, tc.backend, tc.full) })
	}
}

func fabricScenario(t *testing.T, name, backendJSON string, full bool) {
	f := testenv.Fabric(t, 3)
	nodes := f.Nodes()
	etcd := etcdtest.Start(t, f.HostIP())
	etcd.Put("/coreos.com/network/config", `{"Network":"10.244.0.0/16","Backend":`+backendJSON+`}`)
	backend := strings.TrimSuffix(name, "-direct-routing")

	daemons := make([]*flanneld, len(nodes))
	envs := make([]subnetenv.Env, len(nodes))
	for i, n := range nodes {
		mustExec(t, f, n, "ip", "link", "set", "lo", "up") // the health server listens on loopback
		daemons[i] = newFlanneld(t, f, n, etcd.Endpoint)
		daemons[i].Start()
	}
	wantMTU := f.MTU()
	if backend == "vxlan" { // DirectRouting too: peers off the L2 still need the overlay
		wantMTU -= 50
	}
	seen := map[netip.Prefix]string{}
	for i, d := range daemons {
		envs[i] = d.Env()
		if other, dup := seen[envs[i].Subnet]; dup {
			t.Fatalf("%s and %s both got subnet %s", other, nodes[i].Name, envs[i].Subnet)
		}
		seen[envs[i].Subnet] = nodes[i].Name
		if envs[i].MTU != wantMTU || !envs[i].IPMasq || envs[i].Network.String() != "10.244.0.0/16" {
			t.Fatalf("%s subnet.env %+v, want MTU %d, masquerade, network 10.244.0.0/16", nodes[i].Name, envs[i], wantMTU)
		}
		d.WaitHealthy()
	}

	pods := make([]pod, len(nodes))
	for i, n := range nodes {
		pods[i] = addPod(t, f, n, envs[i])
		serveRemoteAddr(t, pods[i].Path)
		serveUDPRemoteAddr(t, pods[i].Path)
	}
	// Pod to pod keeps the pod IP, in every direction.
	for i := range pods {
		for j := range pods {
			if i == j {
				continue
			}
			waitFor(t, 10*time.Second, fmt.Sprintf("pod %d -> pod %d unmasqueraded", i, j), func() error {
				return expectSeenAs(pods[i].Path, pods[j].IP, pods[i].IP.String())
			})
		}
	}
	// UDP too.
	waitFor(t, 5*time.Second, "UDP pod 0 -> pod 2", func() error {
		got, err := udpSeenAs(pods[0].Path, pods[2].IP)
		if err == nil && got != pods[0].IP.String() {
			err = fmt.Errorf("server saw %s, want %s", got, pods[0].IP)
		}
		return err
	})
	// The routes have the documented shape.
	s1 := envs[1].Subnet
	wantRoute := map[string]string{
		"vxlan":                fmt.Sprintf("%s via %s dev flannel.1 proto 78 onlink", s1, s1.Addr()),
		"host-gw":              fmt.Sprintf("%s via %s dev eth0 proto 78", s1, nodes[1].IP),
		"vxlan-direct-routing": fmt.Sprintf("%s via %s dev eth0 proto 78", s1, nodes[1].IP),
	}[name]
	if got := strings.TrimSpace(mustExec(t, f, nodes[0], "ip", "route", "show", s1.String())); got != wantRoute {
		t.Fatalf("route on n0: %q, want %q", got, wantRoute)
	}
	// host-gw refuses a peer behind a router, clearly, and keeps the others.
	if name == "host-gw" {
		mustExec(t, f, nodes[0], "ip", "route", "add", "192.0.2.0/24", "via", nodes[1].IP.String())
		key := "/coreos.com/network/subnets/10.244.240.0-24"
		etcd.Put(key, `{"PublicIP":"192.0.2.10","BackendType":"host-gw","NodeName":"far"}`)
		waitFor(t, 5*time.Second, "L2 error on n0", func() error {
			log, _ := os.ReadFile(daemons[0].logPath)
			if !strings.Contains(string(log), "peer 192.0.2.10 (subnet 10.244.240.0/24) is not on the same L2 segment") {
				return fmt.Errorf("no L2 error in the log")
			}
			return nil
		})
		if routes := mustExec(t, f, nodes[0], "ip", "route", "show", "proto", "78"); strings.Contains(routes, "10.244.240.0") || !strings.Contains(routes, s1.String()) {
			t.Fatalf("routes with an off-L2 peer:\n%s", routes)
		}
		etcd.Delete(key)
	}
	// A node reaches remote pods.
	waitFor(t, 5*time.Second, "node n1 -> pod 0", func() error {
		_, err := seenAs(nodes[1].NetnsPath, pods[0].IP)
		return err
	})

	// Masquerade: a pod reaching an outside network (attached to n0 only) shows up as n0.
	outside := addOutside(t, f, nodes[0])
	serveRemoteAddr(t, outside)
	waitFor(t, 10*time.Second, "pod 0 -> outside masqueraded", func() error {
		return expectSeenAs(pods[0].Path, netip.MustParseAddr("192.168.250.2"), "192.168.250.1")
	})

	if !full {
		return
	}

	// kill -9 and restart: same subnet, nothing rewritten, the connection lives on.
	conn, err := dial(pods[1].Path, pods[0].IP)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got, err := ask(conn); err != nil || got != pods[1].IP.String() {
		t.Fatalf("long-running connection: %q, %v", got, err)
	}
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
	if got, err := ask(conn); err != nil || got != pods[1].IP.String() {
		t.Fatalf("connection across flanneld restarts: %q, %v", got, err)
	}

	// Entries deleted (and added) by hand are repaired by the resync.
	s2 := envs[2].Subnet.String()
	if backend == "vxlan" {
		mac := fdbMAC(t, f, nodes[1], nodes[2].IP)
		mustExec(t, f, nodes[1], "bridge", "fdb", "del", mac, "dev", "flannel.1", "dst", nodes[2].IP.String())
	}
	mustExec(t, f, nodes[1], "ip", "route", "del", s2)
	mustExec(t, f, nodes[1], "ip", "route", "add", "10.244.250.0/24", "via", nodes[2].IP.String(), "proto", "78")
	const jump = "-m comment --comment \"hoist flannel: masquerade traffic leaving the cluster\" -j HOIST-FLANNEL-POSTRTG"
	mustExec(t, f, nodes[1], "sh", "-c", "iptables -t nat -D POSTROUTING "+jump)
	waitFor(t, 5*time.Second, "repair on n1", func() error {
		routes := mustExec(t, f, nodes[1], "ip", "route", "show", "proto", "78")
		if !strings.Contains(routes, s2) || strings.Contains(routes, "10.244.250.0/24") {
			return fmt.Errorf("owned routes:\n%s", routes)
		}
		if backend == "vxlan" && !strings.Contains(mustExec(t, f, nodes[1], "bridge", "fdb", "show", "dev", "flannel.1"), "dst "+nodes[2].IP.String()) {
			return fmt.Errorf("fdb entry for %s missing", nodes[2].IP)
		}
		if !strings.Contains(mustExec(t, f, nodes[1], "iptables-save", "-t", "nat"), "-A POSTROUTING "+jump) {
			return fmt.Errorf("masquerade jump missing")
		}
		return nil
	})
	if n := daemons[1].Metric("hoist_flannel_repaired_entries_total"); n < 3 {
		t.Fatalf("repaired entries metric %v, want >= 3", n)
	}
	waitFor(t, 5*time.Second, "pod 1 -> pod 2 after repair", func() error {
		return expectSeenAs(pods[1].Path, pods[2].IP, pods[1].IP.String())
	})

	// A deleted VXLAN device is recreated (same MAC) with all its entries.
	if backend == "vxlan" {
		mustExec(t, f, nodes[1], "ip", "link", "del", "flannel.1")
		waitFor(t, 5*time.Second, "flannel.1 recreated on n1", func() error {
			return expectSeenAs(pods[1].Path, pods[2].IP, pods[1].IP.String())
		})
		if got := strings.TrimSpace(mustExec(t, f, nodes[1], "ip", "route", "show", envs[0].Subnet.String())); !strings.Contains(got, "dev flannel.1 proto 78 onlink") {
			t.Fatalf("route after recreation: %q", got)
		}
	}

	// A removed node (its lease deleted) disappears from every other node.
	daemons[2].Kill()
	etcd.Delete("/coreos.com/network/subnets/" + subnet.KeyName(envs[2].Subnet))
	for _, n := range nodes[:2] {
		waitFor(t, 3*time.Second, "n2 removed from "+n.Name, func() error {
			if routes := mustExec(t, f, n, "ip", "route", "show", "proto", "78"); strings.Contains(routes, s2) {
				return fmt.Errorf("route to %s still there:\n%s", s2, routes)
			}
			if backend == "vxlan" {
				if fdb := mustExec(t, f, n, "bridge", "fdb", "show", "dev", "flannel.1"); strings.Contains(fdb, "dst "+nodes[2].IP.String()) {
					return fmt.Errorf("fdb entry still there:\n%s", fdb)
				}
			}
			return nil
		})
	}

	// An etcd outage leaves the data path alone; leases are renewed when etcd is back.
	expiry := daemons[0].Metric("hoist_flannel_lease_expiry_timestamp_seconds")
	resyncs := daemons[0].Metric("hoist_flannel_resyncs_total")
	etcd.Stop()
	waitFor(t, 10*time.Second, "3 resyncs during the etcd outage", func() error {
		if n := daemons[0].Metric("hoist_flannel_resyncs_total"); n < resyncs+3 {
			return fmt.Errorf("%v resyncs", n-resyncs)
		}
		return nil
	})
	if got, err := ask(conn); err != nil || got != pods[1].IP.String() {
		t.Fatalf("connection during the etcd outage: %q, %v", got, err)
	}
	if err := expectSeenAs(pods[0].Path, pods[1].IP, pods[0].IP.String()); err != nil {
		t.Fatalf("pod 0 -> pod 1 during the etcd outage: %v", err)
	}
	etcd.Restart()
	waitFor(t, 15*time.Second, "lease renewed after the outage", func() error {
		if e := daemons[0].Metric("hoist_flannel_lease_expiry_timestamp_seconds"); e <= expiry {
			return fmt.Errorf("expiry still %v", e)
		}
		return nil
	})
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
		if out, err := exec.Command("ip", append([]string{"netns", "exec", name}, argv...)...).CombinedOutput(); err != nil {
			t.Fatalf("%v in %s: %v: %s", argv, name, err, out)
		}
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
