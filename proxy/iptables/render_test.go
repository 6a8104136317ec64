package iptables_test

import (
	"net/netip"
	"sort"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	"github.com/hoist-project/hoist/proxy/changes"
	ct "github.com/hoist-project/hoist/proxy/changes/changestest"
	"github.com/hoist-project/hoist/proxy/iptables"
	"github.com/hoist-project/hoist/proxy/iptables/trace"
)

const node = "n0"

var (
	nodeIP  = netip.MustParseAddr("172.16.0.1")
	cfg     = iptables.Config{ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16")}
	podSrc  = netip.MustParseAddr("10.244.3.3")
	outside = netip.MustParseAddr("192.168.5.5")
)

type fixture struct {
	t  *testing.T
	tr *changes.Tracker
}

func newFixture(t *testing.T) *fixture {
	return &fixture{t: t, tr: changes.NewTracker(node, nil)}
}

func (f *fixture) render(c iptables.Config) (*iptables.Ruleset, *trace.Tracer) {
	f.t.Helper()
	st, _, errs := f.tr.Snapshot()
	if len(errs) > 0 {
		f.t.Fatalf("snapshot: %v", errs)
	}
	rs := iptables.Render(c, st)
	text := append(rs.Restore(nil, nil), iptables.JumpsText()...)
	tc, err := trace.New(text, nodeIP)
	if err != nil {
		f.t.Fatalf("parse rendered rules: %v\n%s", err, text)
	}
	return rs, tc
}

func pkt(src netip.Addr, dst string, proto string, port uint16) trace.Packet {
	return trace.Packet{Src: src, Dst: netip.MustParseAddr(dst), Proto: proto, DPort: port}
}

// outcomes enumerates every statistic branch: "DNAT 10.244.1.5:8080 masq" → probability.
func outcomes(tc *trace.Tracer, p trace.Packet) map[string]float64 {
	out := map[string]float64{}
	for _, r := range tc.Enumerate(p) {
		out[r.String()] += r.Prob
	}
	return out
}

func expect(t *testing.T, what string, got map[string]float64, want ...string) {
	t.Helper()
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	sort.Strings(want)
	if strings.Join(keys, "|") != strings.Join(want, "|") {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
	for k, p := range got {
		if d := p - 1/float64(len(want)); d > 1e-6 || d < -1e-6 {
			t.Errorf("%s: %s has probability %.4f, want %.4f", what, k, p, 1/float64(len(want)))
		}
	}
}

func webService(f *fixture, opts ...func(*v1.Service)) {
	f.tr.SetService(ct.Service("web", "10.96.0.10", []v1.ServicePort{
		ct.Port("http", v1.ProtocolTCP, 80, "http-alt", 30080),
		ct.Port("dns", v1.ProtocolUDP, 53, "5353", 0),
	}, opts...))
}

// Two slices resolve the named targetPort "http-alt" to different numbers.
func webSlices(f *fixture, eps1, eps2 []ct.EP) {
	f.tr.SetSlice(ct.Slice("web", "web-a", []discovery.EndpointPort{
		ct.SlicePort("http", v1.ProtocolTCP, 8080), ct.SlicePort("dns", v1.ProtocolUDP, 5353)}, eps1...))
	f.tr.SetSlice(ct.Slice("web", "web-b", []discovery.EndpointPort{
		ct.SlicePort("http", v1.ProtocolTCP, 9090), ct.SlicePort("dns", v1.ProtocolUDP, 5353)}, eps2...))
}

func TestClusterIPPortsAndNamedTargetPorts(t *testing.T) {
	f := newFixture(t)
	webService(f)
	webSlices(f, []ct.EP{{IP: "10.244.1.5", Node: "n1"}, {IP: "10.244.1.6", Node: "n1"}}, []ct.EP{{IP: "10.244.2.7", Node: "n2"}})
	_, tc := f.render(cfg)

	expect(t, "tcp from pod", outcomes(tc, pkt(podSrc, "10.96.0.10", "tcp", 80)),
		"DNAT 10.244.1.5:8080", "DNAT 10.244.1.6:8080", "DNAT 10.244.2.7:9090")
	expect(t, "udp from pod", outcomes(tc, pkt(podSrc, "10.96.0.10", "udp", 53)),
		"DNAT 10.244.1.5:5353", "DNAT 10.244.1.6:5353", "DNAT 10.244.2.7:5353")
	expect(t, "tcp from off-cluster", outcomes(tc, pkt(outside, "10.96.0.10", "tcp", 80)),
		"DNAT 10.244.1.5:8080 masq", "DNAT 10.244.1.6:8080 masq", "DNAT 10.244.2.7:9090 masq")
	local := pkt(nodeIP, "10.96.0.10", "tcp", 80)
	local.Local = true
	expect(t, "tcp from the node itself", outcomes(tc, local),
		"DNAT 10.244.1.5:8080 masq", "DNAT 10.244.1.6:8080 masq", "DNAT 10.244.2.7:9090 masq")
	expect(t, "unserved port", outcomes(tc, pkt(podSrc, "10.96.0.10", "tcp", 53)), "ACCEPT")

	// Without a cluster CIDR nothing sent to a cluster IP is masqueraded.
	_, tc = f.render(iptables.Config{})
	expect(t, "no cluster CIDR", outcomes(tc, pkt(outside, "10.96.0.10", "udp", 53)),
		"DNAT 10.244.1.5:5353", "DNAT 10.244.1.6:5353", "DNAT 10.244.2.7:5353")
}

func TestNodePortAndExternalIPs(t *testing.T) {
	f := newFixture(t)
	webService(f, ct.NodePort, ct.ExternalIPs("203.0.113.7"))
	webSlices(f, []ct.EP{{IP: "10.244.1.5", Node: "n1"}}, nil)
	_, tc := f.render(cfg)

	expect(t, "nodeport from outside", outcomes(tc, pkt(outside, nodeIP.String(), "tcp", 30080)), "DNAT 10.244.1.5:8080 masq")
	expect(t, "nodeport from a pod", outcomes(tc, pkt(podSrc, nodeIP.String(), "tcp", 30080)), "DNAT 10.244.1.5:8080 masq")
	expect(t, "external IP", outcomes(tc, pkt(outside, "203.0.113.7", "tcp", 80)), "DNAT 10.244.1.5:8080 masq")
	expect(t, "external IP, other port", outcomes(tc, pkt(outside, "203.0.113.7", "tcp", 81)), "ACCEPT")
	lo := pkt(netip.MustParseAddr("127.0.0.1"), "127.0.0.1", "tcp", 30080)
	lo.Local = true
	expect(t, "localhost nodeport, disabled", outcomes(tc, lo), "ACCEPT")

	_, tc = f.render(iptables.Config{ClusterCIDR: cfg.ClusterCIDR, LocalhostNodePorts: true})
	expect(t, "localhost nodeport, enabled", outcomes(tc, lo), "DNAT 10.244.1.5:8080 masq")

	// --nodeport-addresses limits NodePorts to the listed addresses.
	_, tc = f.render(iptables.Config{ClusterCIDR: cfg.ClusterCIDR, NodePortAddresses: []netip.Addr{netip.MustParseAddr("172.16.0.9")}})
	expect(t, "nodeport on an unlisted address", outcomes(tc, pkt(outside, nodeIP.String(), "tcp", 30080)), "ACCEPT")
}

func TestSessionAffinity(t *testing.T) {
	f := newFixture(t)
	webService(f, ct.Affinity(600))
	webSlices(f, []ct.EP{{IP: "10.244.1.5", Node: "n1"}, {IP: "10.244.1.6", Node: "n1"}}, nil)
	rs, tc := f.render(cfg)
	text := string(rs.Restore(nil, nil))
	for _, want := range []string{"--rcheck --seconds 600 --reap", "-m recent --set --name KUBE-SEP-"} {
		if !strings.Contains(text, want) {
			t.Fatalf("rules lack %q:\n%s", want, text)
		}
	}
	never := func(float64) bool { return false }
	first := tc.Trace(pkt(podSrc, "10.96.0.10", "tcp", 80), never) // lands on the last endpoint
	if first.String() != "DNAT 10.244.1.6:8080" {
		t.Fatalf("first connection: %s", first)
	}
	for i := 0; i < 3; i++ {
		if again := tc.Trace(pkt(podSrc, "10.96.0.10", "tcp", 80), trace.First); again.DNAT != first.DNAT {
			t.Fatalf("connection %d of the same client went to %s, want sticky %s", i+2, again, first.DNAT)
		}
	}
	if other := tc.Trace(pkt(netip.MustParseAddr("10.244.3.4"), "10.96.0.10", "tcp", 80), trace.First); other.String() != "DNAT 10.244.1.5:8080" {
		t.Fatalf("another client: %s, want the statistic choice 10.244.1.5:8080", other)
	}
}

func TestNoEndpointsRejects(t *testing.T) {
	f := newFixture(t)
	webService(f, ct.NodePort, ct.ExternalIPs("203.0.113.7"))
	webSlices(f, []ct.EP{{IP: "10.244.1.5", Node: "n1", NotReady: true}}, nil)
	_, tc := f.render(cfg)
	expect(t, "cluster IP from a pod", outcomes(tc, pkt(podSrc, "10.96.0.10", "tcp", 80)), "REJECT")
	local := pkt(nodeIP, "10.96.0.10", "udp", 53)
	local.Local = true
	expect(t, "cluster IP from the node", outcomes(tc, local), "REJECT")
	expect(t, "node port", outcomes(tc, pkt(outside, nodeIP.String(), "tcp", 30080)), "REJECT")
	expect(t, "external IP", outcomes(tc, pkt(outside, "203.0.113.7", "tcp", 80)), "REJECT")
}

func TestTerminatingEndpointsExcluded(t *testing.T) {
	f := newFixture(t)
	webService(f)
	webSlices(f, []ct.EP{{IP: "10.244.1.5", Node: "n1"}, {IP: "10.244.1.6", Node: "n1", Terminating: true}}, nil)
	_, tc := f.render(cfg)
	expect(t, "one ready, one terminating", outcomes(tc, pkt(podSrc, "10.96.0.10", "tcp", 80)), "DNAT 10.244.1.5:8080")

	// When every endpoint is terminating but still serving, they keep
	// serving rather than the service going dark (upstream's behaviour).
	webSlices(f, []ct.EP{{IP: "10.244.1.6", Node: "n1", Terminating: true}}, nil)
	_, tc = f.render(cfg)
	expect(t, "only terminating", outcomes(tc, pkt(podSrc, "10.96.0.10", "tcp", 80)), "DNAT 10.244.1.6:8080")
}

func TestExternalTrafficPolicyLocal(t *testing.T) {
	f := newFixture(t)
	webService(f, ct.ExternalLocal)
	webSlices(f, []ct.EP{{IP: "10.244.0.5", Node: node}, {IP: "10.244.1.5", Node: "n1"}}, nil)
	_, tc := f.render(cfg)
	expect(t, "nodeport from outside: local endpoint, client IP kept", outcomes(tc, pkt(outside, nodeIP.String(), "tcp", 30080)),
		"DNAT 10.244.0.5:8080")
	expect(t, "nodeport from a pod: whole cluster", outcomes(tc, pkt(podSrc, nodeIP.String(), "tcp", 30080)),
		"DNAT 10.244.0.5:8080", "DNAT 10.244.1.5:8080")
	expect(t, "cluster IP unaffected", outcomes(tc, pkt(podSrc, "10.96.0.10", "tcp", 80)),
		"DNAT 10.244.0.5:8080", "DNAT 10.244.1.5:8080")

	webSlices(f, []ct.EP{{IP: "10.244.1.5", Node: "n1"}}, nil)
	_, tc = f.render(cfg)
	expect(t, "no local endpoint", outcomes(tc, pkt(outside, nodeIP.String(), "tcp", 30080)), "DROP")
}

func TestInternalTrafficPolicyLocal(t *testing.T) {
	f := newFixture(t)
	webService(f, ct.InternalLocal)
	webSlices(f, []ct.EP{{IP: "10.244.0.5", Node: node}, {IP: "10.244.1.5", Node: "n1"}}, nil)
	_, tc := f.render(cfg)
	expect(t, "cluster IP: local only", outcomes(tc, pkt(podSrc, "10.96.0.10", "tcp", 80)), "DNAT 10.244.0.5:8080")
	webSlices(f, []ct.EP{{IP: "10.244.1.5", Node: "n1"}}, nil)
	_, tc = f.render(cfg)
	expect(t, "no local endpoint", outcomes(tc, pkt(podSrc, "10.96.0.10", "tcp", 80)), "DROP")
}

func TestHairpinMasquerades(t *testing.T) {
	f := newFixture(t)
	webService(f)
	webSlices(f, []ct.EP{{IP: "10.244.1.5", Node: node}}, nil)
	_, tc := f.render(cfg)
	expect(t, "pod to itself through its service", outcomes(tc, pkt(netip.MustParseAddr("10.244.1.5"), "10.96.0.10", "tcp", 80)),
		"DNAT 10.244.1.5:8080 masq")
}
