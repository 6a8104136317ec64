package proxy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	"github.com/hoist-project/hoist/internal/fabric"
	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/proxy/changes"
	ct "github.com/hoist-project/hoist/proxy/changes/changestest"
	"github.com/hoist-project/hoist/proxy/conntrack"
	"github.com/hoist-project/hoist/proxy/ebpf"
	"github.com/hoist-project/hoist/proxy/ebpf/ebpftest"
	"github.com/hoist-project/hoist/proxy/healthcheck"
	"github.com/hoist-project/hoist/proxy/iptables"
)

// nodeEnv is a two-node fabric: the proxy programs node n0, which has pods
// (small netns on a bridge, 10.244.0.0/24) running TCP and UDP echo
// servers; node n1 is a client "outside" the node. Services and slices
// are fed to the tracker directly (no master).
type nodeEnv struct {
	t       *testing.T
	f       *fabric.Fabric
	node    fabric.Node // where the rules live
	outside fabric.Node
	pods    []pod
	tracker *changes.Tracker
	syncer  *Syncer
	metrics *healthcheck.Metrics
	mode    string
	podNet  int    // pods live in 10.244.<podNet>.0/24
	bpf     bpfEnv // eBPF mode only
}

// bpfEnv is where an eBPF-mode test proxy pins and attaches: a private
// bpffs and a private cgroup v2 whose processes are the test's clients.
type bpfEnv struct {
	pinDir, cgroup string
	proxier        *ebpf.Proxier
}

type pod struct {
	name, netnsPath string
	ip              string
}

const (
	podTCPPort  = 8080
	podUDPPort  = 5353
	podEchoPort = 8081 // keeps the connection, echoing every line
)

func newNodeEnv(t *testing.T, pods int) *nodeEnv { return newModeEnv(t, ModeIPTables, pods) }

// newModeEnv is a node env whose proxy uses the given data path.
func newModeEnv(t *testing.T, mode string, pods int) *nodeEnv {
	f := testenv.Fabric(t, 2)
	nodes := f.Nodes()
	return newNodeEnvOn(t, mode, f, nodes[0], nodes[1], 0, pods)
}

// newNodeEnvOn sets up node of fabric f, its pods on 10.244.<podNet>.0/24
// and its proxy; outside routes cluster IPs through it.
func newNodeEnvOn(t *testing.T, mode string, f *fabric.Fabric, node, outside fabric.Node, podNet, pods int) *nodeEnv {
	testenv.RequireCommand(t, "iptables", "iptables")
	testenv.RequireCommand(t, "nsenter", "util-linux")
	e := &nodeEnv{t: t, f: f, node: node, outside: outside, mode: mode, podNet: podNet}
	if mode == ModeEBPF {
		e.bpf.pinDir = t.TempDir()
		t.Cleanup(func() { _ = unix.Unmount(e.bpf.pinDir, unix.MNT_DETACH) })
		e.bpf.cgroup = ebpftest.Cgroup(t)
	}
	e.exec(e.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	e.exec(e.node, "ip", "link", "add", "hstbr0", "type", "bridge")
	e.exec(e.node, "ip", "addr", "add", e.podGateway()+"/24", "dev", "hstbr0")
	e.exec(e.node, "ip", "link", "set", "hstbr0", "up")
	// Pod-to-pod replies cross the bridge; like a real node, pass bridged
	// traffic through iptables so replies to a DNATed connection are un-NATed.
	e.exec(e.node, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
	// The node's own processes reach cluster IPs through the pod bridge (a
	// real node has a default route for this).
	e.exec(e.node, "ip", "route", "add", "10.96.0.0/12", "dev", "hstbr0")
	e.exec(e.outside, "ip", "route", "replace", "10.96.0.0/12", "via", e.node.IP.String())
	for i := 0; i < pods; i++ {
		e.addPod(i)
	}
	e.tracker = changes.NewTracker(e.node.Name, nil)
	e.metrics = healthcheck.NewMetrics()
	e.syncer = e.newSyncer()
	return e
}

// newSyncer starts the proxy's data path, as a (re)started proxy does.
func (e *nodeEnv) newSyncer() *Syncer {
	e.t.Helper()
	var dp DataPath
	var err error
	if e.mode == ModeEBPF {
		if e.bpf.proxier != nil {
			e.bpf.proxier.Close() // the old process exits; pins stay
		}
		e.bpf.proxier, err = ebpf.NewProxier(ebpf.Config{PinDir: e.bpf.pinDir, Cgroup: e.bpf.cgroup,
			Interfaces: []string{"eth0"}, NetnsPath: e.node.NetnsPath}, e.metrics)
		if err == nil {
			p := e.bpf.proxier
			e.t.Cleanup(func() { _ = p.Cleanup() })
		}
		dp = e.bpf.proxier
	} else {
		dp, err = iptables.NewProxier(context.Background(), iptables.Config{ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16")},
			iptables.ExecRunner{Netns: e.node.Netns}, e.metrics)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := conntrack.New(e.node.NetnsPath)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(c.Close)
	return &Syncer{Tracker: e.tracker, DataPath: dp, Conntrack: c, Metrics: e.metrics}
}

func (e *nodeEnv) exec(n fabric.Node, argv ...string) string {
	e.t.Helper()
	out, err := e.f.Exec(context.Background(), n, argv...)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(out)
}

// podGateway is the node's address on its pod bridge.
func (e *nodeEnv) podGateway() string { return fmt.Sprintf("10.244.%d.1", e.podNet) }

// addPod creates pod i with address 10.244.<podNet>.(10+i) and starts its
// servers, which answer "<pod name> <client address>" (the echo server
// for every line it reads, appending the line, keeping the connection).
func (e *nodeEnv) addPod(i int) {
	t := e.t
	p := pod{name: fmt.Sprintf("p%d", i), ip: fmt.Sprintf("10.244.%d.%d", e.podNet, 10+i)}
	nsName := "hoist-" + testenv.UniqueName("pod")
	path, err := nsutil.CreateNamed(nsName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nsutil.DeleteNamed(nsName) })
	p.netnsPath = path
	veth := fmt.Sprintf("hstv%d", i)
	e.exec(e.node, "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", nsName)
	e.exec(e.node, "ip", "link", "set", veth, "master", "hstbr0", "up")
	// hairpinMode, as the CNI bridge plugin sets it: a pod reaching itself
	// through a service gets its packets back out of the port they came in.
	e.exec(e.node, "ip", "link", "set", veth, "type", "bridge_slave", "hairpin", "on")
	for _, argv := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "addr", "add", p.ip + "/24", "dev", "eth0"},
		{"ip", "link", "set", "eth0", "up"},
		{"ip", "route", "add", "default", "via", e.podGateway()},
	} {
		if out, err := e.f.Command(context.Background(), fabric.Node{Netns: nsName}, argv...).CombinedOutput(); err != nil {
			t.Fatalf("%v in pod: %v: %s", argv, err, out)
		}
	}
	var ln, echo net.Listener
	var pc net.PacketConn
	if err := nsutil.Do(path, func() (err error) {
		if ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", podTCPPort)); err != nil {
			return err
		}
		if echo, err = net.Listen("tcp4", fmt.Sprintf(":%d", podEchoPort)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", podUDPPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); echo.Close(); pc.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "%s %s %s\n", p.name, c.RemoteAddr(), sc.Text())
				}
			}()
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s\n", p.name, c.RemoteAddr())
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(fmt.Sprintf("%s %s\n", p.name, from)), from)
		}
	}()
	e.pods = append(e.pods, p)
}

// endpoints lists pods (by index) as ready endpoints on node n0.
func (e *nodeEnv) endpoints(idx ...int) []ct.EP {
	var eps []ct.EP
	for _, i := range idx {
		eps = append(eps, ct.EP{IP: e.pods[i].ip, Node: e.node.Name})
	}
	return eps
}

// serve sets a service with one TCP and one UDP port and its slice.
func (e *nodeEnv) serve(name, clusterIP string, nodePort int32, eps []ct.EP, opts ...func(*v1.Service)) {
	e.tracker.SetService(ct.Service(name, clusterIP, []v1.ServicePort{
		ct.Port("http", v1.ProtocolTCP, 80, "http", nodePort),
		ct.Port("dns", v1.ProtocolUDP, 53, "dns", 0),
	}, opts...))
	e.tracker.SetSlice(ct.Slice(name, name+"-0", []discovery.EndpointPort{
		ct.SlicePort("http", v1.ProtocolTCP, podTCPPort), ct.SlicePort("dns", v1.ProtocolUDP, podUDPPort)}, eps...))
}

func (e *nodeEnv) sync(full bool) {
	e.t.Helper()
	if err := e.syncer.Sync(context.Background(), full); err != nil {
		e.t.Fatal(err)
	}
}

// dialer connects to a TCP address and returns the server's line.
type dialer func(addr string) (string, error)

// from returns how a client in network namespace nsPath connects: for the
// eBPF mode, a process in the test cgroup (whose socket programs act on
// it); otherwise this process.
func (e *nodeEnv) from(nsPath string) dialer {
	if e.mode == ModeEBPF {
		return ebpftest.Client{Cgroup: e.bpf.cgroup, NetnsPath: nsPath}.TCP
	}
	return func(addr string) (string, error) { return tcpGet(nsPath, addr) }
}

// tcpGet connects from inside nsPath and returns the server's line.
func tcpGet(nsPath, addr string) (string, error) {
	var line string
	err := nsutil.Do(nsPath, func() error {
		c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		line, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	return strings.TrimSpace(line), err
}

// udpAsk sends one datagram from local port lport inside nsPath and
// returns the reply.
func udpAsk(nsPath string, lport int, addr string) (string, error) {
	var reply string
	err := nsutil.Do(nsPath, func() error {
		d := net.Dialer{LocalAddr: &net.UDPAddr{Port: lport}}
		c, err := d.Dial("udp4", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("hello")); err != nil {
			return err
		}
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		reply = strings.TrimSpace(string(buf[:n]))
		return err
	})
	return reply, err
}

// podOf returns the pod name in a server reply.
func podOf(reply string) string { return strings.Fields(reply + " ")[0] }

// clientOf returns the client IP a server saw.
func clientOf(reply string) string {
	f := strings.Fields(reply)
	if len(f) < 2 {
		return ""
	}
	host, _, _ := net.SplitHostPort(f[1])
	return host
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// save returns the node's whole iptables-save output without comments
// and counters, for byte comparisons.
func (e *nodeEnv) save() string {
	var keep []string
	for _, l := range strings.Split(e.exec(e.node, "iptables-save"), "\n") {
		if !strings.HasPrefix(l, "#") {
			keep = append(keep, counters.ReplaceAllString(l, ""))
		}
	}
	return strings.Join(keep, "\n")
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
