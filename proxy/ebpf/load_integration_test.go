package ebpf

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/proxy/changes"
	ct "github.com/hoist-project/hoist/proxy/changes/changestest"
)

// TestIntegrationEBPFConnect4 loads the programs (the verifier is the
// first check), attaches them to a private cgroup v2 and connects from a
// process in that cgroup, inside a private netns, to service addresses
// rendered by Render.
func TestIntegrationEBPFConnect4(t *testing.T) {
	testenv.RequireRoot(t)
	busybox := testenv.RequireCommand(t, "busybox", "busybox-static")
	pin := t.TempDir()
	if err := unix.Mount("bpf", pin, "bpf", 0, ""); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(pin, 0) })
	var objs proxyObjects
	if err := loadProxyObjects(&objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: pin}}); err != nil {
		t.Fatalf("load programs: %v", err)
	}
	t.Cleanup(func() { objs.Close() })

	cgroup := filepath.Join("/sys/fs/cgroup/unified", "hoist-"+testenv.UniqueName("cg"))
	if err := os.Mkdir(cgroup, 0o755); err != nil {
		t.Fatalf("create cgroup v2 (needs cgroup2 at /sys/fs/cgroup/unified): %v", err)
	}
	t.Cleanup(func() { _ = os.Remove(cgroup) })
	for _, p := range []struct {
		prog *ebpf.Program
		at   ebpf.AttachType
	}{
		{objs.HoistConnect4, ebpf.AttachCGroupInet4Connect},
		{objs.HoistSendmsg4, ebpf.AttachCGroupUDP4Sendmsg},
		{objs.HoistRecvmsg4, ebpf.AttachCGroupUDP4Recvmsg},
		{objs.HoistGetpeername4, ebpf.AttachCgroupInet4GetPeername},
	} {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: cgroup, Attach: p.at, Program: p.prog})
		if err != nil {
			t.Fatalf("attach %v: %v", p.at, err)
		}
		t.Cleanup(func() { l.Close() })
	}

	// The backend listens on loopback of a private netns that has no route
	// to the service CIDR: only the rewrite can reach it.
	nsName := "hoist-" + testenv.UniqueName("bpf")
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
	ids := NewIDs()
	m := Render(st, ids)
	if stats, err := NewApplier(objs.HoistServices, objs.HoistBackends).Apply(m); err != nil || stats.Puts != len(m.Services)+len(m.Backends) {
		t.Fatalf("first apply: %+v %v", stats, err)
	}
	// A restarted proxy reads the pinned maps and writes nothing.
	restarted := NewApplier(objs.HoistServices, objs.HoistBackends)
	if stats, err := restarted.Apply(Render(st, ids)); err != nil || stats != (ApplyStats{}) {
		t.Fatalf("apply after restart: %+v %v", stats, err)
	}

	cg, err := os.Open(cgroup)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	nc := func(addr string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		host, port, _ := net.SplitHostPort(addr)
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", nsName, busybox, "nc", host, port)
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	client := func(mode, addr string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", nsName, self)
		cmd.Env = append(os.Environ(), clientEnv+"="+mode, "HOIST_BPF_ADDR="+addr)
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	// TCP: connect4 rewrites, getpeername4 shows the service address again.
	out, err := client("tcp", "10.96.0.10:80")
	if err != nil || !strings.HasPrefix(out, "backend 127.0.0.1:") || !strings.HasSuffix(out, "peer=10.96.0.10:80") {
		t.Fatalf("TCP to the cluster IP: %v: %q", err, out)
	}
	// Unconnected UDP: sendmsg4 rewrites, recvmsg4 restores the source.
	out, err = client("udp", "10.96.0.10:53")
	if err != nil || out != "udp-backend peer=10.96.0.10:53" {
		t.Fatalf("UDP to the cluster IP: %v: %q", err, out)
	}
	// The backend leaves: the service entry flips to no backends and refuses.
	tr.SetSlice(ct.Slice("web", "web-0", nil))
	st, _, _ = tr.Snapshot()
	if stats, err := restarted.Apply(Render(st, ids)); err != nil || stats.Deletes != 2 || stats.Puts != 2 {
		t.Fatalf("apply of an endpoint removal: %+v %v (want the 2 services updated, the 2 slots deleted)", stats, err)
	}
	if out, err := client("tcp", "10.96.0.10:80"); err == nil || !strings.Contains(out, "refused") {
		t.Fatalf("service whose endpoint left: %v: %q", err, out)
	}

	start := time.Now()
	out, err = nc("10.96.0.11:80")
	if err == nil || !strings.Contains(out, "refused") || time.Since(start) > 2*time.Second {
		t.Fatalf("service without endpoints: %v: %q after %s, want connection refused at once", err, out, time.Since(start))
	}
}
