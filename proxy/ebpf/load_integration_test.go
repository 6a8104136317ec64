package ebpf_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ciliumebpf "github.com/cilium/ebpf"
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

func TestMain(m *testing.M) {
	ebpftest.Main()
	os.Exit(m.Run())
}

// TestIntegrationEBPFConnect4 runs the Proxier against a private bpffs
// (which it mounts) and a private cgroup v2, and connects from a process in
// that cgroup, inside a private netns, to service addresses.
func TestIntegrationEBPFConnect4(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "nsenter", "util-linux")
	pin := t.TempDir()
	t.Cleanup(func() { _ = unix.Unmount(pin, unix.MNT_DETACH) })
	cgroup := ebpftest.Cgroup(t)

	// The backend listens on loopback of a private netns that has no route
	// to the service CIDR: only the rewrite can reach it.
	nsName := testenv.UniqueName("hoist-bpf")
	nsPath, err := nsutil.CreateNamed(nsName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nsutil.DeleteNamed(nsName) })
	var ln net.Listener
	var pc net.PacketConn
	if err := nsutil.Do(nsPath, func() error {
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			return fmt.Errorf("lo up: %v: %s", err, out)
		}
		if ln, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", ln.Addr().(*net.TCPAddr).Port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte("udp-backend"), from)
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "backend %s\n", c.RemoteAddr())
			c.Close()
		}
	}()
	backendPort := int32(ln.Addr().(*net.TCPAddr).Port)

	tr := changes.NewTracker("n0", nil)
	tr.SetService(ct.Service("web", "10.96.0.10", []v1.ServicePort{ct.Port("http", v1.ProtocolTCP, 80, "80", 0), ct.Port("dns", v1.ProtocolUDP, 53, "53", 0)}))
	tr.SetSlice(ct.Slice("web", "web-0", []discovery.EndpointPort{ct.SlicePort("http", v1.ProtocolTCP, backendPort), ct.SlicePort("dns", v1.ProtocolUDP, backendPort)}, ct.EP{IP: "127.0.0.1"}))
	tr.SetService(ct.Service("empty", "10.96.0.11", []v1.ServicePort{ct.Port("", v1.ProtocolTCP, 80, "80", 0)}))
	st, _, _ := tr.Snapshot()
	cfg := ebpf.Config{PinDir: pin, Cgroup: cgroup, Interfaces: []string{}, NetnsPath: nsPath}
	p, err := ebpf.NewProxier(cfg, nil)
	if err != nil {
		t.Fatalf("load and attach: %v", err)
	}
	t.Cleanup(func() { _ = p.Cleanup() })
	if err := p.Sync(t.Context(), st, true); err != nil || p.LastApply().Puts != 5 {
		t.Fatalf("first sync: %+v %v (want 3 services and 2 backends written)", p.LastApply(), err)
	}
	// A restarted proxy adopts the pinned maps and links and writes nothing.
	p.Close()
	if p, err = ebpf.NewProxier(cfg, nil); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if err := p.Sync(t.Context(), st, true); err != nil || p.LastApply() != (ebpf.ApplyStats{}) {
		t.Fatalf("sync after restart: %+v %v", p.LastApply(), err)
	}

	// A full sync repairs an entry someone else deleted from the pinned map.
	pinned, err := ciliumebpf.LoadPinnedMap(filepath.Join(pin, "proxy", "hoist_services"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var k ebpf.ServiceKey
	var v ebpf.ServiceValue
	if !pinned.Iterate().Next(&k, &v) {
		t.Fatal("pinned service map is empty")
	}
	if err := pinned.Delete(k); err != nil {
		t.Fatal(err)
	}
	pinned.Close()
	if err := p.Sync(t.Context(), st, true); err != nil || p.LastApply() != (ebpf.ApplyStats{Puts: 1}) {
		t.Fatalf("full sync after a foreign delete: %+v %v, want the entry written back", p.LastApply(), err)
	}
	// A cgroup that does not exist is named in the error.
	bad := cfg
	bad.Cgroup = cgroup + "-missing"
	if _, err := ebpf.NewProxier(bad, nil); err == nil || !strings.Contains(err.Error(), bad.Cgroup) {
		t.Fatalf("missing cgroup: %v", err)
	}

	c := ebpftest.Client{Cgroup: cgroup, NetnsPath: nsPath}
	// TCP: connect4 rewrites, getpeername4 shows the service address again.
	out, err := c.TCP("10.96.0.10:80")
	if err != nil || !strings.HasPrefix(out, "backend 127.0.0.1:") || !strings.HasSuffix(out, "peer=10.96.0.10:80") {
		t.Fatalf("TCP to the cluster IP: %v: %q", err, out)
	}
	// Unconnected UDP: sendmsg4 rewrites, recvmsg4 restores the source.
	out, err = c.UDP("10.96.0.10:53")
	if err != nil || out != "udp-backend peer=10.96.0.10:53" {
		t.Fatalf("UDP to the cluster IP: %v: %q", err, out)
	}
	// The backend leaves: the service entry flips to no backends and refuses.
	tr.SetSlice(ct.Slice("web", "web-0", nil))
	st, _, _ = tr.Snapshot()
	if err := p.Sync(t.Context(), st, false); err != nil || p.LastApply() != (ebpf.ApplyStats{Puts: 2, Deletes: 2}) {
		t.Fatalf("sync of an endpoint removal: %+v %v (want the 2 services updated, the 2 slots deleted)", p.LastApply(), err)
	}
	if out, err := c.TCP("10.96.0.10:80"); !ebpftest.IsRefused(out, err) {
		t.Fatalf("service whose endpoint left: %v: %q", err, out)
	}
	start := time.Now()
	out, err = c.TCP("10.96.0.11:80")
	if !ebpftest.IsRefused(out, err) || time.Since(start) > 2*time.Second {
		t.Fatalf("service without endpoints: %v: %q after %s, want connection refused at once", err, out, time.Since(start))
	}
}
