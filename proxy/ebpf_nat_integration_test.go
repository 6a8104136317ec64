package proxy

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/internal/testenv"
	ct "github.com/hoist-project/hoist/proxy/changes/changestest"
)

// natEnv is two eBPF-mode nodes and an outside client on one fabric:
// node a has no pods, node b has pod p0 (10.244.1.10), and a routes
// b's pod subnet through b, as flannel's host-gw backend does.
type natEnv struct {
	a, b *nodeEnv
}

func newNATEnv(t *testing.T) *natEnv {
	f := testenv.Fabric(t, 3)
	n := f.Nodes()
	e := &natEnv{a: newNodeEnvOn(t, ModeEBPF, f, n[0], n[2], 0, 0), b: newNodeEnvOn(t, ModeEBPF, f, n[1], n[2], 1, 1)}
	e.a.exec(e.a.node, "ip", "route", "add", "10.244.1.0/24", "via", e.b.node.IP.String())
	return e
}

// serve gives both nodes the service "np" with p0 on node b as its only
// endpoint: NodePorts 30080 (TCP, one line per connection), 30081 (TCP
// echo, a long connection) and 30053 (UDP).
func (e *natEnv) serve(opts ...func(*v1.Service)) {
	opts = append(opts, ct.NodePort)
	for _, n := range []*nodeEnv{e.a, e.b} {
		n.tracker.SetService(ct.Service("np", clusterIP, []v1.ServicePort{
			ct.Port("http", v1.ProtocolTCP, 80, "http", 30080),
			ct.Port("echo", v1.ProtocolTCP, 81, "echo", 30081),
			ct.Port("dns", v1.ProtocolUDP, 53, "dns", 30053),
		}, opts...))
		n.tracker.SetSlice(ct.Slice("np", "np-0", []discovery.EndpointPort{
			ct.SlicePort("http", v1.ProtocolTCP, podTCPPort), ct.SlicePort("echo", v1.ProtocolTCP, podEchoPort),
			ct.SlicePort("dns", v1.ProtocolUDP, podUDPPort)}, ct.EP{IP: e.b.pods[0].ip, Node: e.b.node.Name}))
		n.sync(false)
	}
}

// TestIntegrationEBPFNodePortRemoteEndpoint: externalTrafficPolicy
// Cluster, node a has no endpoint. tc on a DNATs and SNATs to the pod on
// b, which sees a's address; replies come back through a. A load loop
// sees no failure and a proxy restart keeps an established connection.
func TestIntegrationEBPFNodePortRemoteEndpoint(t *testing.T) {
	e := newNATEnv(t)
	e.serve()
	outside := e.a.outside.NetnsPath
	aIP, bIP := e.a.node.IP.String(), e.b.node.IP.String()

	for _, c := range []struct{ node, wantClient string }{{aIP, aIP}, {bIP, e.a.outside.IP.String()}} {
		reply, err := tcpGet(outside, c.node+":30080")
		if err != nil || podOf(reply) != "p0" || clientOf(reply) != c.wantClient {
			t.Fatalf("TCP NodePort on %s: %q %v, want p0 seeing client %s", c.node, reply, err, c.wantClient)
		}
		reply, err = udpAsk(outside, 0, c.node+":30053")
		if err != nil || podOf(reply) != "p0" || clientOf(reply) != c.wantClient {
			t.Fatalf("UDP NodePort on %s: %q %v, want p0 seeing client %s", c.node, reply, err, c.wantClient)
		}
	}

	// An established connection through a's SNAT survives restarts of
	// a's proxy while a load loop runs.
	conn, err := dialFrom(outside, aIP+":30081")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	lines := bufio.NewReader(conn)
	echo := func(i int) {
		t.Helper()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(conn, "line%d\n", i); err != nil {
			t.Fatalf("established connection, line %d: %v", i, err)
		}
		reply, err := lines.ReadString('\n')
		if err != nil || !strings.HasSuffix(strings.TrimSpace(reply), fmt.Sprintf("line%d", i)) || clientOf(reply) != aIP {
			t.Fatalf("established connection, line %d: %q %v", i, reply, err)
		}
	}
	echo(0)
	load := make(chan error, 1)
	ok := 0
	go func() {
		for end := time.Now().Add(6 * time.Second); time.Now().Before(end); ok++ {
			proto, reply, err := "TCP", "", error(nil)
			if ok%4 == 3 {
				proto = "UDP"
				reply, err = udpAsk(outside, 0, aIP+":30053")
			} else {
				reply, err = tcpGet(outside, aIP+":30080")
			}
			if err == nil && clientOf(reply) != aIP {
				err = fmt.Errorf("reply %q: the pod did not see node a", reply)
			}
			if err != nil {
				load <- fmt.Errorf("%s NodePort request %d: %w", proto, ok+1, err)
				return
			}
			// SNAT holds a port per backend for TIME_WAIT: pace the
			// loop to a rate the 4536 ports sustain (not a synchronization).
			time.Sleep(5 * time.Millisecond)
		}
		load <- nil
	}()
	for i := 1; i <= 3; i++ {
		time.Sleep(time.Second) // spread the restarts over the load (not a synchronization)
		e.a.syncer = e.a.newSyncer()
		e.a.sync(true)
		echo(i)
	}
	if err := <-load; err != nil {
		logTCPTroubles(t, e.b.pods[0].netnsPath, outside)
		t.Fatal(err)
	}
	if ok < 100 {
		t.Fatalf("only %d requests in the load loop", ok)
	}
	echo(4)
	t.Logf("%d NodePort requests through node a's SNAT across 3 restarts, none failed", ok)
}

// TestIntegrationEBPFNodePortExternalLocal: externalTrafficPolicy Local.
// Node a, without a local endpoint, refuses; node b serves and the pod
// sees the client's own address.
func TestIntegrationEBPFNodePortExternalLocal(t *testing.T) {
	e := newNATEnv(t)
	e.serve(ct.ExternalLocal)
	outside := e.a.outside.NetnsPath
	aIP, bIP := e.a.node.IP.String(), e.b.node.IP.String()
	if reply, err := tcpGet(outside, aIP+":30080"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("TCP NodePort on a node without local endpoints: %q %v, want connection refused", reply, err)
	}
	if reply, err := udpAsk(outside, 0, aIP+":30053"); err == nil {
		t.Fatalf("UDP NodePort on a node without local endpoints answered %q", reply)
	}
	client := e.a.outside.IP.String()
	reply, err := tcpGet(outside, bIP+":30080")
	if err != nil || podOf(reply) != "p0" || clientOf(reply) != client {
		t.Fatalf("TCP NodePort on b: %q %v, want p0 seeing the client %s", reply, err, client)
	}
	reply, err = udpAsk(outside, 0, bIP+":30053")
	if err != nil || podOf(reply) != "p0" || clientOf(reply) != client {
		t.Fatalf("UDP NodePort on b: %q %v, want p0 seeing the client %s", reply, err, client)
	}
	// From a's own processes the socket programs use every endpoint.
	if reply, err := e.a.from(e.a.node.NetnsPath)(aIP + ":30080"); err != nil || podOf(reply) != "p0" {
		t.Fatalf("NodePort from node a itself: %q %v", reply, err)
	}
}

// dialFrom opens a TCP connection from inside nsPath.
func dialFrom(nsPath, addr string) (net.Conn, error) {
	var c net.Conn
	err := nsutil.Do(nsPath, func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, 2*time.Second)
		return err
	})
	return c, err
}

// logTCPTroubles logs the non-zero TCP drop, reset and TIME_WAIT counters
// of the namespaces, to tell a failed load loop's cause (nstat, iproute2).
func logTCPTroubles(t *testing.T, nsPaths ...string) {
	trouble := regexp.MustCompile(`TW|PAWS|Drop|Reset|Fail|Err`)
	for _, ns := range nsPaths {
		out, _ := exec.Command("nsenter", "--net="+ns, "nstat", "-az").CombinedOutput()
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			if len(f) > 1 && f[1] != "0" && trouble.MatchString(f[0]) {
				t.Log(ns, l)
			}
		}
	}
}
