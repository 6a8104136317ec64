package plugintest

import (
	"net"
	"strings"
	"testing"

	"github.com/hoist-project/hoist/internal/testenv"
)

func portmapConf(version, network string, mappings ...map[string]any) Conf {
	pm := make([]any, len(mappings))
	for i, m := range mappings {
		pm[i] = m
	}
	return Conf{"cniVersion": version, "name": network, "type": "portmap",
		"capabilities": map[string]any{"portMappings": true}, "runtimeConfig": map[string]any{"portMappings": pm}}
}

func TestIntegrationPortmapChain(t *testing.T) {
	e := NewEnv(t, "")
	peer := e.NewPeer()
	br := e.BridgeConf("1.0.0", "pm", testenv.UniqueName("hst-br"), "10.91.0.0/24")
	pm := portmapConf("1.0.0", "pm",
		map[string]any{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"},
		map[string]any{"hostPort": 18053, "containerPort": 53, "protocol": "udp"})
	ns := NewNetns(t, "hst-c")
	Serve(t, ns, ":80", "hello from the container")

	out := e.MustExec(Call{Plugin: "bridge", Command: "ADD", ContainerID: "web", Netns: ns, Config: br.Bytes(t)})
	pmConf := pm.WithPrev(t, out)
	out2 := e.MustExec(Call{Plugin: "portmap", Command: "ADD", ContainerID: "web", Netns: ns, Config: pmConf.Bytes(t)})
	if strings.TrimSpace(string(out2)) == "" || !strings.Contains(string(out2), "10.91.0.") {
		t.Fatalf("portmap must pass the prevResult on, printed %s", out2)
	}
	e.MustExec(Call{Plugin: "portmap", Command: "CHECK", ContainerID: "web", Netns: ns, Config: portmapConf("1.0.0", "pm",
		map[string]any{"hostPort": 18080, "containerPort": 80}).WithPrev(t, out2).Bytes(t)})

	hostPort := net.JoinHostPort(peer.HostAddr, "18080")
	if got, err := Fetch(peer.NS, hostPort); err != nil || got != "hello from the container" {
		t.Fatalf("hostPort from another namespace: %q, %v", got, err)
	}
	// Hairpin: the container reaches itself through its own hostPort.
	if got, err := Fetch(ns, hostPort); err != nil || got != "hello from the container" {
		t.Fatalf("hairpin through the hostPort: %q, %v", got, err)
	}
	// localhost access is off unless allowLocalhost is set.
	if _, err := Fetch(e.HostNS, "127.0.0.1:18080"); err == nil {
		t.Fatal("hostPort answered on 127.0.0.1 without allowLocalhost")
	}

	// A container without port mappings: portmap does nothing at all.
	before := e.Run("iptables-save", "-t", "nat")
	ns2 := NewNetns(t, "hst-c")
	out = e.MustExec(Call{Plugin: "bridge", Command: "ADD", ContainerID: "plain", Netns: ns2, Config: br.With("ipMasq", false).Bytes(t)})
	e.MustExec(Call{Plugin: "portmap", Command: "ADD", ContainerID: "plain", Netns: ns2, Config: portmapConf("1.0.0", "pm").WithPrev(t, out).Bytes(t)})
	if after := e.Run("iptables-save", "-t", "nat"); stripComments(after) != stripComments(before) {
		t.Fatalf("portmap without mappings changed iptables:\n%s", after)
	}

	for range 2 {
		e.MustExec(Call{Plugin: "portmap", Command: "DEL", ContainerID: "web", Netns: ns, Config: pm.Bytes(t)})
	}
	if _, err := Fetch(peer.NS, hostPort); err == nil {
		t.Fatal("hostPort still forwarded after DEL")
	}
	e.MustExec(Call{Plugin: "bridge", Command: "DEL", ContainerID: "web", Netns: ns, Config: br.Bytes(t)})
	e.MustExec(Call{Plugin: "bridge", Command: "DEL", ContainerID: "plain", Netns: ns2, Config: br.With("ipMasq", false).Bytes(t)})
	if n := e.HoistRules(); n != 0 {
		t.Fatalf("%d hoist iptables lines left after DEL:\n%s", n, e.Run("iptables-save"))
	}
}

func TestIntegrationPortmapAllowLocalhost(t *testing.T) {
	e := NewEnv(t, "")
	br := e.BridgeConf("1.0.0", "pmlo", testenv.UniqueName("hst-br"), "10.91.1.0/24")
	pm := portmapConf("1.0.0", "pmlo", map[string]any{"hostPort": 18081, "containerPort": 80}).With("allowLocalhost", true)
	ns := NewNetns(t, "hst-c")
	Serve(t, ns, ":80", "local ok")
	out := e.MustExec(Call{Plugin: "bridge", Command: "ADD", ContainerID: "lo1", Netns: ns, Config: br.Bytes(t)})
	e.MustExec(Call{Plugin: "portmap", Command: "ADD", ContainerID: "lo1", Netns: ns, Config: pm.WithPrev(t, out).Bytes(t)})
	if got, err := Fetch(e.HostNS, "127.0.0.1:18081"); err != nil || got != "local ok" {
		t.Fatalf("allowLocalhost: %q, %v", got, err)
	}
	e.MustExec(Call{Plugin: "portmap", Command: "DEL", ContainerID: "lo1", Netns: ns, Config: pm.Bytes(t)})
	e.MustExec(Call{Plugin: "bridge", Command: "DEL", ContainerID: "lo1", Netns: ns, Config: br.Bytes(t)})
}

func TestIntegrationPortmapGCOrphans(t *testing.T) {
	e := NewEnv(t, "")
	br := e.BridgeConf("1.1.0", "pmgc", testenv.UniqueName("hst-br"), "10.91.2.0/24")
	for i, id := range []string{"keep", "lost"} {
		ns := NewNetns(t, "hst-c")
		out := e.MustExec(Call{Plugin: "bridge", Command: "ADD", ContainerID: id, Netns: ns, Config: br.Bytes(t)})
		pm := portmapConf("1.1.0", "pmgc", map[string]any{"hostPort": 19000 + i, "containerPort": 80})
		e.MustExec(Call{Plugin: "portmap", Command: "ADD", ContainerID: id, Netns: ns, Config: pm.WithPrev(t, out).Bytes(t)})
	}
	valid := []any{map[string]any{"containerID": "keep", "ifname": "eth0"}}
	e.MustExec(Call{Plugin: "portmap", Command: "GC", Config: portmapConf("1.1.0", "pmgc").With("cni.dev/valid-attachments", valid).Bytes(t)})
	save := e.Run("iptables-save", "-t", "nat")
	if !strings.Contains(save, "portmap net=pmgc id=keep ") || strings.Contains(save, "portmap net=pmgc id=lost ") || !strings.Contains(save, "dport 19000") || strings.Contains(save, "dport 19001") {
		t.Fatalf("GC must remove only the lost container's chains:\n%s", save)
	}
	e.MustExec(Call{Plugin: "bridge", Command: "GC", Config: br.With("cni.dev/valid-attachments", []any{}).Bytes(t)})
	e.MustExec(Call{Plugin: "portmap", Command: "GC", Config: portmapConf("1.1.0", "pmgc").With("cni.dev/valid-attachments", []any{}).Bytes(t)})
	if n, l := e.HoistRules(), e.Leases("pmgc"); n+len(l) != 0 {
		t.Fatalf("after GC of everything: %d rules, leases %v", n, l)
	}
}

// stripComments drops iptables-save's timestamp lines.
func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
