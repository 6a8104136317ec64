package plugintest

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/hoist-project/hoist/internal/cni/netutil"
	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/internal/testenv"
)

// Peer is a third namespace wired to the host namespace by a veth pair:
// the host end has HostAddr, the peer end PeerAddr (both in 192.168.250.0/24).
type Peer struct {
	NS                 string
	HostAddr, PeerAddr string
}

// NewPeer creates the peer namespace and link; both vanish at cleanup.
func (e *Env) NewPeer() *Peer {
	e.t.Helper()
	p := &Peer{NS: NewNetns(e.t, "hst-p"), HostAddr: "192.168.250.1", PeerAddr: "192.168.250.2"}
	hostEnd := testenv.UniqueName("hst-up")
	InNS(e.t, e.HostNS, func() error {
		l, err := netutil.CreateVeth(hostEnd, "eth0", 0, p.NS)
		if err != nil {
			return err
		}
		if err := netutil.AddAddr(l, net.IPNet{IP: net.ParseIP(p.HostAddr), Mask: net.CIDRMask(24, 32)}); err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	})
	InNS(e.t, p.NS, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := netutil.AddAddr(l, net.IPNet{IP: net.ParseIP(p.PeerAddr), Mask: net.CIDRMask(24, 32)}); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	return p
}

// Serve listens on TCP addr inside nsPath and answers every connection with
// reply; it stops at cleanup.
func Serve(t testing.TB, nsPath, addr, reply string) {
	t.Helper()
	var ln net.Listener
	InNS(t, nsPath, func() error {
		var err error
		ln, err = net.Listen("tcp", addr) // the socket stays in nsPath's namespace
		return err
	})
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, reply)
			c.Close()
		}
	}()
}

// Fetch connects to addr from inside nsPath and returns what the server sent.
func Fetch(nsPath, addr string) (string, error) {
	var got string
	err := nsutil.Do(nsPath, func() error {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		b, err := io.ReadAll(c)
		got = string(b)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("connect %s from %s: %w", addr, nsPath, err)
	}
	return got, nil
}
