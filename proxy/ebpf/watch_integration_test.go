package ebpf_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/proxy/changes"
	ct "github.com/hoist-project/hoist/proxy/changes/changestest"
	"github.com/hoist-project/hoist/proxy/ebpf"
	"github.com/hoist-project/hoist/proxy/ebpf/ebpftest"
)

func newNetns(t *testing.T) string {
	t.Helper()
	name := testenv.UniqueName("hoist-bpf")
	p, err := nsutil.CreateNamed(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nsutil.DeleteNamed(name) })
	if err := nsutil.Do(p, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitFor polls cond until it returns nil or d passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tcxPinnedOn says whether the link pinned at path is a TCX link on ifindex.
func tcxPinnedOn(path string, ifindex int) error {
	l, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		return err
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return err
	}
	if info.TCX() == nil || int(info.TCX().Ifindex) != ifindex {
		return fmt.Errorf("%s is not a TCX link on ifindex %d: %+v", path, ifindex, info)
	}
	return nil
}

// An interface created after the proxier started (as flanneld creates
// flannel.1) gets the NodePort programs without any sync, NodePorts answer
// on its address, and its pins go when it goes.
func TestIntegrationEBPFAttachesNewInterface(t *testing.T) {
	testenv.RequireRoot(t)
	pin := t.TempDir()
	t.Cleanup(func() { _ = unix.Unmount(pin, unix.MNT_DETACH) })
	cgroup := ebpftest.Cgroup(t)
	node, outside := newNetns(t), newNetns(t)

	// The backend listens on every address of the node, on a port that
	// is not the NodePort: only the tc rewrite reaches it.
	var ln net.Listener
	if err := nsutil.Do(node, func() (err error) {
		ln, err = net.Listen("tcp4", "0.0.0.0:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "backend client=%s\n", c.RemoteAddr().(*net.TCPAddr).IP)
			c.Close()
		}
	}()
	backendPort := int32(ln.Addr().(*net.TCPAddr).Port)

	tr := changes.NewTracker("n0", nil)
	tr.SetService(ct.Service("np", "10.96.0.20", []v1.ServicePort{ct.Port("http", v1.ProtocolTCP, 80, "http", 30080)}, ct.NodePort))
	tr.SetSlice(ct.Slice("np", "np-0", []discovery.EndpointPort{ct.SlicePort("http", v1.ProtocolTCP, backendPort)}, ct.EP{IP: "10.77.0.1", Node: "n0"}))
	st, _, _ := tr.Snapshot()
	p, err := ebpf.NewProxier(ebpf.Config{PinDir: pin, Cgroup: cgroup, NetnsPath: node}, nil)
	if err != nil {
		t.Fatalf("load and attach: %v", err)
	}
	t.Cleanup(func() { _ = p.Cleanup() })
	if err := p.Sync(t.Context(), st, true); err != nil {
		t.Fatal(err)
	}

	// A new uplink with a dot in its name (like flannel.1), peer outside.
	ifname := testenv.UniqueName("hst.")
	peer := testenv.UniqueName("hstn")
	out, err := netns.GetFromPath(outside)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var ifindex int
	if err := nsutil.Do(node, func() error {
		la := netlink.NewLinkAttrs()
		la.Name = ifname
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peer, PeerNamespace: netlink.NsFd(out)}); err != nil {
			return err
		}
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		ifindex = l.Attrs().Index
		return upWithAddr(l, "10.77.0.1/24")
	}); err != nil {
		t.Fatal(err)
	}
	if err := nsutil.Do(outside, func() error {
		l, err := netlink.LinkByName(peer)
		if err != nil {
			return err
		}
		return upWithAddr(l, "10.77.0.2/24")
	}); err != nil {
		t.Fatal(err)
	}

	links := filepath.Join(pin, "proxy", "links")
	pinName := func(dir string) string { return "tcx-" + dir + "-" + strings.ReplaceAll(ifname, ".", ":") }
	waitFor(t, "NodePort programs attached to the new interface", 5*time.Second, func() error {
		for _, dir := range []string{"ingress", "egress"} {
			if err := tcxPinnedOn(filepath.Join(links, pinName(dir)), ifindex); err != nil {
				return err
			}
		}
		return nil
	})
	waitFor(t, "the NodePort on the new interface's address from outside", 5*time.Second, func() error {
		var reply string
		err := nsutil.Do(outside, func() error {
			c, err := net.DialTimeout("tcp4", "10.77.0.1:30080", time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			reply, err = bufio.NewReader(c).ReadString('\n')
			return err
		})
		if err == nil && strings.TrimSpace(reply) != "backend client=10.77.0.2" {
			t.Fatalf("NodePort reply %q, want the backend with the client IP kept", reply)
		}
		return err
	})

	if err := nsutil.Do(node, func() error { return netlink.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ifname}}) }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pins of the removed interface gone", 5*time.Second, func() error {
		for _, dir := range []string{"ingress", "egress"} {
			if _, err := os.Stat(filepath.Join(links, pinName(dir))); !os.IsNotExist(err) {
				return fmt.Errorf("%s still pinned (%v)", pinName(dir), err)
			}
		}
		return nil
	})
}

func upWithAddr(l netlink.Link, cidr string) error {
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(l, a); err != nil {
		return err
	}
	return netlink.LinkSetUp(l)
}
