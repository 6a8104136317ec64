package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoist-project/hoist/internal/testenv"
)

// TestE2EProxyIPTables runs the service proxy checks with every node's
// proxy in iptables mode.
func TestE2EProxyIPTables(t *testing.T) { testE2EProxy(t, "iptables") }

// TestE2EProxyEBPF runs the same checks with the eBPF data path.
func TestE2EProxyEBPF(t *testing.T) { testE2EProxy(t, "ebpf") }

// testE2EProxy brings up a 2-node cluster with --proxy-mode mode and
// checks, through the real kubectl, what a Service promises: ClusterIP
// from a pod on the other node and from a node, NodePort from outside
// (policy Cluster, and Local with the client IP preserved), a UDP endpoint
// change seen by the same client port at once, ClientIP session affinity,
// immediate refusal without endpoints, and no failed request while the
// Deployment scales 1→5→1.
func testE2EProxy(t *testing.T, mode string) {
	curl := testenv.RequireCommand(t, "curl", "curl") // busybox-static's wget segfaults on this kernel
	python := testenv.RequireCommand(t, "python3", "python3")
	c := startCluster(t, 2, "--proxy-mode", mode)
	if out, err := c.kubectlStdin(proxyManifest(), "apply", "-f", "-"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	pods := c.waitWebReady(t, 1)
	c.waitFor("client pod Running on node2", 90*time.Second, func() (bool, string) {
		out, err := c.kubectl("get", "pod", "client", "-o", "jsonpath={.status.phase} {.status.podIP}")
		return err == nil && strings.HasPrefix(out, "Running ") && len(out) > len("Running "), fmt.Sprint(out, err)
	})
	clientIP := c.jsonpath(t, "pod/client", "{.status.podIP}")
	node1, node2 := c.node(t, "node1"), c.node(t, "node2")
	webIP := c.jsonpath(t, "service/web", "{.spec.clusterIP}")
	dial := func(proto, request, host, port string, tries int) ([]string, []string, error) {
		return podDial(node2.NetnsPath, clientIP, proto, request, host, port, tries)
	}

	c.waitFor("the ClusterIP from the client pod on node2", 30*time.Second, func() (bool, string) {
		got, errs, err := dial("http", "hostname", webIP, "80", 1)
		return err == nil && len(got) == 1 && got[0] == pods[0], fmt.Sprint(got, errs, err)
	})
	c.waitFor("the ClusterIP from node1 (`hoist cluster exec`)", 30*time.Second, func() (bool, string) {
		out, err := c.nodeExec("node1", curl, "-sS", "--max-time", "3", "http://"+webIP+"/hostname")
		return err == nil && out == pods[0], fmt.Sprint(out, err)
	})

	// NodePorts from the root namespace, which is outside every node: node2
	// has no endpoint, so policy Cluster forwards to node1's pod.
	nodePort := c.jsonpath(t, "service/web-nodeport", "{.spec.ports[0].nodePort}")
	c.waitFor("the NodePort on node2 from outside", 30*time.Second, func() (bool, string) {
		got, _, err := getFromRoot(fmt.Sprintf("http://%s:%s/hostname", node2.IP, nodePort))
		return err == nil && got == pods[0], fmt.Sprint(got, err)
	})
	localPort := c.jsonpath(t, "service/web-local", "{.spec.ports[0].nodePort}")
	c.waitFor("the Local NodePort on node1 from outside shows the client's IP", 30*time.Second, func() (bool, string) {
		got, local, err := getFromRoot(fmt.Sprintf("http://%s:%s/clientip", node1.IP, localPort))
		return err == nil && strings.HasPrefix(got, local+":"), fmt.Sprintf("clientip %q, client %s, %v", got, local, err)
	})

	// No endpoints: refused at once, not a timeout.
	nothingIP := c.jsonpath(t, "service/nothing", "{.spec.clusterIP}")
	c.waitFor("the endpoint-less ClusterIP refused from node1 in < 1 s", 30*time.Second, func() (bool, string) {
		out, err := c.nodeExec("node1", curl, "-sS", "--max-time", "3", "-o", "/dev/null", "-w", "%{time_total}", "http://"+nothingIP+"/")
		if err == nil || !strings.Contains(err.Error(), "exit status 7") { // 7: could not connect
			return false, fmt.Sprint(out, err)
		}
		took, perr := strconv.ParseFloat(strings.TrimSpace(out), 64)
		if perr != nil || took >= 1 {
			t.Fatalf("refusal took %q s (%v), want well under 1 s", out, err)
		}
		return true, ""
	})

	// UDP: the same client port (so the same conntrack tuple in iptables
	// mode) reaches the new endpoint once the old pod is gone.
	udp := func() (string, error) {
		return c.nodeExec("node2", python, "-c", udpClientScript, webIP, "81")
	}
	c.waitFor("UDP ClusterIP from node2 answered by "+pods[0], 30*time.Second, func() (bool, string) {
		out, err := udp()
		return err == nil && strings.TrimSpace(out) == pods[0], fmt.Sprint(out, err)
	})
	if out, err := c.kubectl("delete", "pod", pods[0], "--wait=false"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	pods = c.waitWebReady(t, 1)
	c.waitFor("UDP from the same client port answered by the new pod "+pods[0], 20*time.Second, func() (bool, string) {
		out, err := udp()
		return err == nil && strings.TrimSpace(out) == pods[0], fmt.Sprint(out, err)
	})

	// Scale 1→5→1 while the client pod sends requests to the ClusterIP.
	// Pods' veths come and go on node1's bridge; its MAC (every pod's
	// gateway) must not follow them.
	brMAC := bridgeMAC(t, node1.NetnsPath)
	load := startLoad(func() ([]string, []string, error) { return dial("http", "hostname", webIP, "80", 5) })
	t.Cleanup(func() { load.stop() })
	scale := func(n int) []string {
		if out, err := c.kubectl("scale", "deployment/web", "--replicas", fmt.Sprint(n)); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return c.waitWebReady(t, n)
	}
	five := scale(5)
	load.waitServedBy(t, len(five), 30*time.Second)

	// ClientIP affinity: 10 requests from one pod, one backend (of five).
	stickyIP := c.jsonpath(t, "service/web-sticky", "{.spec.clusterIP}")
	got, errs, err := dial("http", "hostname", stickyIP, "80", 10)
	if err != nil || len(got) != 10 {
		t.Fatalf("10 requests to the sticky service: %v %v %v", got, errs, err)
	}
	for _, h := range got {
		if h != got[0] {
			t.Fatalf("sessionAffinity ClientIP: answers from several pods: %v", got)
		}
	}

	one := scale(1)
	// Requests that started before the last scale-down finished must also succeed.
	sent := load.requests()
	c.waitFor("the load loop going on after the scale-down", 30*time.Second, func() (bool, string) {
		return load.requests() > sent+20, fmt.Sprint(load.requests())
	})
	n, failures := load.stop()
	if after := bridgeMAC(t, node1.NetnsPath); after != brMAC {
		t.Errorf("node1's bridge MAC changed from %s to %s while pods came and went", brMAC, after)
	}
	t.Logf("%s: %d requests while scaling 1→5→1, answered by %d pods", mode, n, load.servedBy())
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed while scaling (last pod %s): %v", len(failures), n, one[0], failures)
	}
}

// udpClientScript sends "hostname" from the fixed local port 29999 (below
// the ephemeral range, so nothing else holds it) to argv[1]:argv[2] over a
// connected UDP socket and prints the answer.
const udpClientScript = `import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 29999))
s.settimeout(2)
s.connect((sys.argv[1], int(sys.argv[2])))
s.send(b"hostname")
print(s.recv(512).decode())
`

// loadLoop sends requests in a loop until stopped and records every
// failure and which pods answered.
type loadLoop struct {
	mu       sync.Mutex
	n        int
	failures []string
	hosts    map[string]bool
	done     chan struct{}
	stopped  chan struct{}
	once     sync.Once
}

func startLoad(send func() (responses, errs []string, err error)) *loadLoop {
	l := &loadLoop{hosts: map[string]bool{}, done: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(l.stopped)
		for {
			select {
			case <-l.done:
				return
			default:
			}
			start := time.Now()
			responses, errs, err := send()
			l.mu.Lock()
			if err != nil {
				errs = append(errs, err.Error())
			}
			for _, e := range errs { // the time helps match it to the proxies' and kubelets' logs
				l.failures = append(l.failures, start.UTC().Format("15:04:05.000")+" "+e)
			}
			l.n += len(responses) + len(errs)
			for _, h := range responses {
				l.hosts[h] = true
			}
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *loadLoop) requests() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// servedBy is how many different pods have answered.
func (l *loadLoop) servedBy() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.hosts)
}

// waitServedBy waits until n different pods have answered.
func (l *loadLoop) waitServedBy(t *testing.T, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for l.servedBy() < n {
		if time.Now().After(deadline) {
			t.Fatalf("load loop answered by %d pods within %s, want %d", l.servedBy(), d, n)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// stop ends the loop (once; later calls only read) and returns the number
// of requests and the failures.
func (l *loadLoop) stop() (int, []string) {
	l.once.Do(func() { close(l.done) })
	<-l.stopped
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, l.failures
}
