package plugintest

import (
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hoist-project/hoist/internal/testenv"
)

// sendUDP sends one datagram from a fixed source port inside nsPath.
func sendUDP(t *testing.T, nsPath string, src int, dst string) {
	t.Helper()
	InNS(t, nsPath, func() error {
		raddr, err := net.ResolveUDPAddr("udp", dst)
		if err != nil {
			return err
		}
		c, err := net.DialUDP("udp", &net.UDPAddr{Port: src}, raddr)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("ping"))
		return err
	})
}

func udpFlows(t *testing.T, nsPath string, port uint16) int {
	t.Helper()
	n := 0
	InNS(t, nsPath, func() error {
		flows, err := netlink.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
		for _, f := range flows {
			if f.Forward.Protocol == unix.IPPROTO_UDP && f.Forward.DstPort == port {
				n++
			}
		}
		return err
	})
	return n
}

func TestIntegrationPortmapFlushesStaleUDPConntrack(t *testing.T) {
	e := NewEnv(t, "")
	peer := e.NewPeer()
	br := e.BridgeConf("1.0.0", "pmudp", testenv.UniqueName("hst-br"), "10.91.3.0/24")
	ns := NewNetns(t, "hst-c")
	out := e.MustExec(Call{Plugin: "bridge", Command: "ADD", ContainerID: "dns", Netns: ns, Config: br.Bytes(t)})

	var srv *net.UDPConn
	InNS(t, ns, func() error {
		var err error
		srv, err = net.ListenUDP("udp", &net.UDPAddr{Port: 53})
		return err
	})
	t.Cleanup(func() { srv.Close() })

	// A flow to the host port before the mapping exists: conntrack pins it to the host.
	dst := net.JoinHostPort(peer.HostAddr, "18053")
	sendUDP(t, peer.NS, 40053, dst)
	if n := udpFlows(t, e.HostNS, 18053); n != 1 {
		t.Fatalf("expected one conntrack flow to port 18053 before ADD, have %d", n)
	}
	pm := portmapConf("1.0.0", "pmudp", map[string]any{"hostPort": 18053, "containerPort": 53, "protocol": "udp"})
	e.MustExec(Call{Plugin: "portmap", Command: "ADD", ContainerID: "dns", Netns: ns, Config: pm.WithPrev(t, out).Bytes(t)})
	if n := udpFlows(t, e.HostNS, 18053); n != 0 {
		t.Fatalf("ADD must flush the stale flow, %d left", n)
	}
	// The same 5-tuple now reaches the container.
	sendUDP(t, peer.NS, 40053, dst)
	if err := srv.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, _, err := srv.ReadFromUDP(buf); err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("datagram did not reach the container after ADD: %v", err)
	}
	if n := udpFlows(t, e.HostNS, 18053); n != 1 {
		t.Fatalf("expected the new DNAT flow, have %d", n)
	}
	e.MustExec(Call{Plugin: "portmap", Command: "DEL", ContainerID: "dns", Netns: ns, Config: pm.Bytes(t)})
	if n := udpFlows(t, e.HostNS, 18053); n != 0 {
		t.Fatalf("DEL must flush the mapped port's flows, %d left", n)
	}
	e.MustExec(Call{Plugin: "bridge", Command: "DEL", ContainerID: "dns", Netns: ns, Config: br.Bytes(t)})
}
