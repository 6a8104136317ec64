package proxy

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	ct "github.com/hoist-project/hoist/proxy/changes/changestest"
	"github.com/hoist-project/hoist/proxy/iptables/trace"
)

const clusterIP = "10.96.0.10"

var svcTCP = clusterIP + ":80"

// reachesAll polls until connections from nsPath have reached every pod.
func (e *nodeEnv) reachesAll(from, addr string, pods int) map[string]string {
	return e.reachesAllVia(e.from(from), addr, pods)
}

// reachesAllVia polls until connections by dial have reached every pod.
func (e *nodeEnv) reachesAllVia(dial dialer, addr string, pods int) map[string]string {
	seen := map[string]string{} // pod → client address it saw
	eventually(e.t, "connections to "+addr+" reach every pod", 20*time.Second, func() error {
		reply, err := dial(addr)
		if err != nil {
			return err
		}
		seen[podOf(reply)] = clientOf(reply)
		if len(seen) < pods {
			return fmt.Errorf("reached only %v", seen)
		}
		return nil
	})
	return seen
}

func TestIntegrationIPTablesClusterIP(t *testing.T) {
	e := newNodeEnv(t, 2)
	e.serve("web", clusterIP, 0, e.endpoints(0, 1))
	e.sync(false)

	// From the node itself (nat OUTPUT) and from another namespace routed
	// through the node (nat PREROUTING).
	e.reachesAll(e.node.NetnsPath, svcTCP, 2)
	seen := e.reachesAll(e.outside.NetnsPath, svcTCP, 2)
	for p, client := range seen {
		if client != "10.244.0.1" {
			t.Errorf("pod %s saw off-cluster client as %s, want it masqueraded to the node's 10.244.0.1", p, client)
		}
	}
	// From a pod: reaching another pod keeps the pod's address; reaching
	// itself (hairpin) is masqueraded so its reply comes back through the node.
	seen = e.reachesAll(e.pods[0].netnsPath, svcTCP, 2)
	if seen["p0"] != "10.244.0.1" || seen["p1"] != e.pods[0].ip {
		t.Errorf("pod client seen as %v; want p0 (hairpin) 10.244.0.1 and p1 %s", seen, e.pods[0].ip)
	}
	if reply, err := udpAsk(e.outside.NetnsPath, 0, clusterIP+":53"); err != nil {
		t.Fatalf("UDP to the cluster IP: %v", err)
	} else if podOf(reply) != "p0" && podOf(reply) != "p1" {
		t.Fatalf("UDP reply %q", reply)
	}

	// The tracer reads the kernel's own iptables-save output the same way.
	tc, err := trace.New([]byte(e.exec(e.node, "iptables-save")), e.node.IP)
	if err != nil {
		t.Fatalf("trace the kernel's rules: %v", err)
	}
	got := map[string]bool{}
	for _, r := range tc.Enumerate(trace.Packet{Src: e.outside.IP, Dst: netip.MustParseAddr(clusterIP), Proto: "tcp", DPort: 80}) {
		got[r.String()] = true
	}
	if len(got) != 2 || !got["DNAT 10.244.0.10:8080 masq"] || !got["DNAT 10.244.0.11:8080 masq"] {
		t.Fatalf("traced kernel rules: %v", got)
	}

	// A restarted proxy with the same state changes nothing in the kernel.
	before := e.save()
	e.syncer = e.newSyncer()
	e.tracker.SetService(ct.Service("unused", "10.96.0.99", nil)) // marks pending; renders nothing
	e.sync(true)
	if after := e.save(); after != before {
		t.Fatalf("restart changed the rules:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestIntegrationIPTablesNoEndpointsRejects(t *testing.T) {
	e := newNodeEnv(t, 1)
	e.serve("empty", clusterIP, 0, nil)
	e.sync(false)
	for _, from := range []struct{ name, ns string }{{"node", e.node.NetnsPath}, {"outside", e.outside.NetnsPath}} {
		start := time.Now()
		_, err := tcpGet(from.ns, svcTCP)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("from %s: got %v, want connection refused", from.name, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("from %s: refusal took %s", from.name, d)
		}
	}
	// Endpoints appear: the same service now answers.
	e.serve("empty", clusterIP, 0, e.endpoints(0))
	e.sync(false)
	e.reachesAll(e.outside.NetnsPath, svcTCP, 1)
}

func TestIntegrationIPTablesUDPStaleConntrack(t *testing.T) {
	e := newNodeEnv(t, 2)
	e.serve("dns", clusterIP, 0, e.endpoints(0))
	e.sync(false)
	const lport = 40053 // one client socket, like a resolver: its flow would stick
	ask := func() string {
		t.Helper()
		reply, err := udpAsk(e.outside.NetnsPath, lport, clusterIP+":53")
		if err != nil {
			t.Fatalf("UDP ask: %v", err)
		}
		return podOf(reply)
	}
	for i := 0; i < 3; i++ {
		if p := ask(); p != "p0" {
			t.Fatalf("reply from %s, want p0", p)
		}
	}
	// p0 leaves the service (its server keeps running): the next datagram
	// of the same flow must go to p1, not follow the old conntrack entry.
	before := counterValue(e.metrics.ConntrackCleanups)
	e.serve("dns", clusterIP, 0, e.endpoints(1))
	e.sync(false)
	if p := ask(); p != "p1" {
		t.Fatalf("after the endpoint change the flow still reaches %s", p)
	}
	if got := counterValue(e.metrics.ConntrackCleanups) - before; got < 1 {
		t.Fatalf("conntrack cleanups metric grew by %v", got)
	}
}

func TestIntegrationIPTablesSessionAffinity(t *testing.T) {
	e := newNodeEnv(t, 2)
	e.serve("sticky", clusterIP, 0, e.endpoints(0, 1), ct.Affinity(300))
	e.sync(false)
	first, err := tcpGet(e.outside.NetnsPath, svcTCP)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 15; i++ {
		reply, err := tcpGet(e.outside.NetnsPath, svcTCP)
		if err != nil {
			t.Fatal(err)
		}
		if podOf(reply) != podOf(first) {
			t.Fatalf("connection %d went to %s, want sticky %s", i+2, podOf(reply), podOf(first))
		}
	}
}

func TestIntegrationIPTablesNodePort(t *testing.T) {
	e := newNodeEnv(t, 2)
	nodePort := fmt.Sprintf("%s:30080", e.node.IP)
	e.serve("np", clusterIP, 30080, e.endpoints(0, 1), ct.NodePort)
	e.sync(false)
	for p, client := range e.reachesAll(e.outside.NetnsPath, nodePort, 2) {
		if client == e.outside.IP.String() {
			t.Errorf("pod %s saw the client IP with externalTrafficPolicy Cluster; want masquerade", p)
		}
	}

	// externalTrafficPolicy Local: the pods are local, and see the client.
	e.serve("np", clusterIP, 30080, e.endpoints(0, 1), ct.ExternalLocal)
	e.sync(false)
	for p, client := range e.reachesAll(e.outside.NetnsPath, nodePort, 2) {
		if client != e.outside.IP.String() {
			t.Errorf("pod %s saw client %s, want the preserved %s", p, client, e.outside.IP)
		}
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
