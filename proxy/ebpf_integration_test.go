package proxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	ct "github.com/hoist-project/hoist/proxy/changes/changestest"
	"github.com/hoist-project/hoist/proxy/ebpf"
	"github.com/hoist-project/hoist/proxy/ebpf/ebpftest"
)

// The eBPF-mode tests use the iptables tests' node (nodeEnv): the socket
// programs attach to a test cgroup whose processes are the clients on the
// node and in pods; the tc programs sit on the node's eth0 in its netns.

func TestIntegrationEBPFClusterIP(t *testing.T) {
	e := newModeEnv(t, ModeEBPF, 2)
	e.serve("web", clusterIP, 0, e.endpoints(0, 1))
	e.sync(false)

	// From the node: connect4 picks a pod; the pod sees the node's own
	// address on the pod bridge (no NAT at all).
	for p, client := range e.reachesAll(e.node.NetnsPath, svcTCP, 2) {
		if client != "10.244.0.1" {
			t.Errorf("pod %s saw the node as %s, want 10.244.0.1", p, client)
		}
	}
	// From a pod, including itself: the pod's own address is the source.
	for p, client := range e.reachesAll(e.pods[0].netnsPath, svcTCP, 2) {
		if client != e.pods[0].ip {
			t.Errorf("pod %s saw the pod client as %s, want %s", p, client, e.pods[0].ip)
		}
	}
	// getpeername shows the cluster IP, not the backend.
	c := ebpftest.Client{Cgroup: e.bpf.cgroup, NetnsPath: e.pods[0].netnsPath}
	if out, err := c.TCP(svcTCP); err != nil || !strings.HasSuffix(out, "peer="+svcTCP) {
		t.Fatalf("TCP peer: %v: %q", err, out)
	}
	// UDP: sendmsg4 picks a pod, recvmsg4 shows the reply from the cluster IP.
	out, err := c.UDP(clusterIP + ":53")
	if err != nil || !strings.HasSuffix(out, "peer="+clusterIP+":53") || (podOf(out) != "p0" && podOf(out) != "p1") {
		t.Fatalf("UDP to the cluster IP: %v: %q", err, out)
	}
	// An endpoint change reaches new UDP packets at once: only p1 is left.
	e.serve("web", clusterIP, 0, e.endpoints(1))
	e.sync(false)
	for i := 0; i < 5; i++ {
		if out, err := c.UDP(clusterIP + ":53"); err != nil || podOf(out) != "p1" {
			t.Fatalf("UDP after the endpoint change: %v: %q, want p1", err, out)
		}
	}
}

func TestIntegrationEBPFNoEndpointsRejects(t *testing.T) {
	e := newModeEnv(t, ModeEBPF, 1)
	e.serve("empty", clusterIP, 30080, nil, ct.NodePort)
	e.sync(false)
	for _, from := range []struct{ name, ns string }{{"node", e.node.NetnsPath}, {"pod", e.pods[0].netnsPath}} {
		start := time.Now()
		out, err := e.from(from.ns)(svcTCP)
		if !ebpftest.IsRefused(out, err) {
			t.Fatalf("from %s: %q %v, want connection refused", from.name, out, err)
		}
		if d := time.Since(start); d > 2*time.Second { // includes starting the client process
			t.Fatalf("from %s: refusal took %s", from.name, d)
		}
	}
	// The NodePort from outside: tc leaves the packet alone, nothing
	// listens, the node's stack refuses.
	if _, err := tcpGet(e.outside.NetnsPath, fmt.Sprintf("%s:30080", e.node.IP)); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("NodePort without endpoints from outside: %v, want connection refused", err)
	}
	e.serve("empty", clusterIP, 30080, e.endpoints(0), ct.NodePort)
	e.sync(false)
	e.reachesAll(e.node.NetnsPath, svcTCP, 1)
}

func TestIntegrationEBPFSessionAffinity(t *testing.T) {
	e := newModeEnv(t, ModeEBPF, 2)
	e.serve("sticky", clusterIP, 30080, e.endpoints(0, 1), ct.Affinity(300), ct.NodePort)
	e.sync(false)
	nodePort := fmt.Sprintf("%s:30080", e.node.IP)
	for _, c := range []struct {
		name string
		dial dialer
		addr string
	}{
		{"cluster IP from the node (per netns)", e.from(e.node.NetnsPath), svcTCP},
		{"NodePort from outside (per client IP)", func(a string) (string, error) { return tcpGet(e.outside.NetnsPath, a) }, nodePort},
	} {
		first, err := c.dial(c.addr)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for i := 0; i < 10; i++ {
			reply, err := c.dial(c.addr)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if podOf(reply) != podOf(first) {
				t.Fatalf("%s: connection %d went to %s, want sticky %s", c.name, i+2, podOf(reply), podOf(first))
			}
		}
	}
}

func TestIntegrationEBPFNodePort(t *testing.T) {
	e := newModeEnv(t, ModeEBPF, 2)
	nodePort := fmt.Sprintf("%s:30080", e.node.IP)
	e.serve("np", clusterIP, 30080, e.endpoints(0, 1), ct.NodePort)
	e.sync(false)
	// From outside through tc: the client IP is preserved.
	outside := func(a string) (string, error) { return tcpGet(e.outside.NetnsPath, a) }
	for p, client := range e.reachesAllVia(outside, nodePort, 2) {
		if client != e.outside.IP.String() {
			t.Errorf("pod %s saw client %s, want the preserved %s", p, client, e.outside.IP)
		}
	}
	if reply, err := udpAsk(e.outside.NetnsPath, 0, fmt.Sprintf("%s:30080", e.node.IP)); err == nil {
		t.Fatalf("UDP to a TCP-only NodePort answered: %q", reply)
	}
	// From the node's own processes, through the socket programs.
	e.reachesAll(e.node.NetnsPath, nodePort, 2)

	// UDP NodePort: one client socket keeps its flow's backend until that
	// backend leaves the service; then the flow moves (the proxy prunes
	// the tc flow map every sync).
	udpService := func(eps []ct.EP) {
		e.tracker.SetService(ct.Service("dns", "10.96.0.53", []v1.ServicePort{ct.Port("dns", v1.ProtocolUDP, 53, "dns", 30053)}, ct.NodePort))
		e.tracker.SetSlice(ct.Slice("dns", "dns-0", []discovery.EndpointPort{ct.SlicePort("dns", v1.ProtocolUDP, podUDPPort)}, eps...))
		e.sync(false)
	}
	udpService(e.endpoints(0))
	const lport = 40053
	udpNodePort := fmt.Sprintf("%s:30053", e.node.IP)
	ask := func() string {
		t.Helper()
		reply, err := udpAsk(e.outside.NetnsPath, lport, udpNodePort)
		if err != nil {
			t.Fatalf("UDP to the NodePort: %v", err)
		}
		if clientOf(reply) != e.outside.IP.String() {
			t.Fatalf("UDP NodePort reply %q: client IP not preserved", reply)
		}
		return podOf(reply)
	}
	for i := 0; i < 3; i++ {
		if p := ask(); p != "p0" {
			t.Fatalf("UDP NodePort reached %s, want p0", p)
		}
	}
	udpService(e.endpoints(1))
	if p := ask(); p != "p1" {
		t.Fatalf("after the endpoint change the UDP flow still reaches %s", p)
	}
}

// TestIntegrationEBPFRestartUnderLoad restarts the proxy three times while
// clients on the node connect back to back: the pinned links and maps keep
// serving and the new process takes them over, so no connection fails.
func TestIntegrationEBPFRestartUnderLoad(t *testing.T) {
	e := newModeEnv(t, ModeEBPF, 2)
	e.serve("web", clusterIP, 30080, e.endpoints(0, 1), ct.NodePort)
	e.sync(false)
	e.reachesAll(e.node.NetnsPath, svcTCP, 2)

	const load = 6 * time.Second
	loop, err := ebpftest.Client{Cgroup: e.bpf.cgroup, NetnsPath: e.node.NetnsPath}.StartLoop(svcTCP, load)
	if err != nil {
		t.Fatal(err)
	}
	outside := make(chan error, 1)
	outsideOK := 0
	go func() {
		for end := time.Now().Add(load); time.Now().Before(end); outsideOK++ {
			if _, err := tcpGet(e.outside.NetnsPath, fmt.Sprintf("%s:30080", e.node.IP)); err != nil {
				outside <- fmt.Errorf("NodePort connection %d from outside: %w", outsideOK+1, err)
				return
			}
		}
		outside <- nil
	}()
	for i := 0; i < 3; i++ {
		time.Sleep(time.Second) // spread the restarts over the load (not a synchronization)
		e.syncer = e.newSyncer()
		e.sync(true)
		if st := e.bpf.proxier.LastApply(); st.Puts != 0 || st.Deletes != 0 {
			t.Fatalf("restart %d rewrote map entries: %+v", i+1, st)
		}
		if l := e.bpf.proxier.Links(); l != (ebpf.LinkStats{Updated: 6}) {
			t.Fatalf("restart %d: links %+v, want the 6 pinned ones (4 cgroup, 2 tc) updated in place", i+1, l)
		}
	}
	ok, failed, first, err := loop.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if failed != 0 || ok < 10 {
		t.Fatalf("connections during restarts: %d ok, %d failed (first: %s)", ok, failed, first)
	}
	if err := <-outside; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d cluster IP and %d NodePort connections across 3 restarts, none failed", ok, outsideOK)
}
