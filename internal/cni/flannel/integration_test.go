package flannel_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"

	"github.com/hoist-project/hoist/flannel/subnetenv"
	"github.com/hoist-project/hoist/internal/cni/netutil"
	"github.com/hoist-project/hoist/internal/cni/plugintest"
	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/internal/testenv"
)

// node is one test's flannel node: a host namespace with the plugins, a
// subnet.env path and the meta-plugin's state directory.
type node struct {
	*plugintest.Env
	subnetFile, stateDir, bridge string
}

func newNode(t *testing.T) *node {
	t.Helper()
	e := plugintest.NewEnv(t, "")
	if bin := testenv.Binary(t, "cni/flannel"); filepath.Dir(bin) != e.BinDir {
		t.Fatalf("flannel plugin built into %s, the other plugins into %s", bin, e.BinDir)
	}
	dir := t.TempDir()
	return &node{Env: e, subnetFile: filepath.Join(dir, "run", "subnet.env"), stateDir: filepath.Join(dir, "flannel"),
		bridge: testenv.UniqueName("hst-br")}
}

func (n *node) conf(version, network string) plugintest.Conf {
	return plugintest.Conf{
		"cniVersion": version, "name": network, "type": "flannel",
		"subnetFile": n.subnetFile, "dataDir": n.stateDir,
		"delegate": map[string]any{"bridge": n.bridge, "isDefaultGateway": true, "hairpinMode": true},
		"ipam":     map[string]any{"dataDir": n.DataDir},
	}
}

func (n *node) writeEnv(t *testing.T, subnet string, mtu int) subnetenv.Env {
	t.Helper()
	env := subnetenv.Env{Network: netip.MustParsePrefix("10.244.0.0/16"), Subnet: netip.MustParsePrefix(subnet), MTU: mtu, IPMasq: true}
	if err := subnetenv.Write(n.subnetFile, env); err != nil {
		t.Fatal(err)
	}
	return env
}

func (n *node) call(cmd, id, netns string, conf []byte) plugintest.Call {
	return plugintest.Call{Plugin: "flannel", Command: cmd, ContainerID: id, Netns: netns, Config: conf}
}

// expect runs c and wants success when ok, else the given CNI code.
func expect(t *testing.T, e *plugintest.Env, c plugintest.Call, ok bool, code uint) *types.Error {
	t.Helper()
	_, cerr := e.Exec(c)
	switch {
	case ok && cerr != nil:
		t.Fatalf("flannel %s: code %d: %s", c.Command, cerr.Code, cerr.Msg)
	case !ok && (cerr == nil || cerr.Code != code):
		t.Fatalf("flannel %s: got %+v, want code %d", c.Command, cerr, code)
	}
	return cerr
}

// containerView is what the container sees on eth0: addresses, MTU and routes "dst via gw".
func containerView(t *testing.T, netns string) (addrs []string, mtu int, routes []string) {
	t.Helper()
	plugintest.InNS(t, netns, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		mtu = l.Attrs().MTU
		as, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, a := range as {
			addrs = append(addrs, a.IPNet.String())
		}
		rs, err := netlink.RouteList(l, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range rs {
			dst := "0.0.0.0/0"
			if r.Dst != nil {
				dst = r.Dst.String()
			}
			routes = append(routes, fmt.Sprintf("%s via %s", dst, r.Gw))
		}
		return nil
	})
	return addrs, mtu, routes
}

var specVersions = []struct {
	version       string
	check, status bool // CHECK needs 0.4.0+, STATUS and GC need 1.1.0
}{
	{"0.3.1", false, false},
	{"0.4.0", true, false},
	{"1.0.0", true, false},
	{"1.1.0", true, true},
}

// One row per spec version: ADD from subnet.env, CHECK, STATUS, GC, then DEL
// after subnet.env is gone, which must still release everything.
func TestIntegrationFlannelSpecVersions(t *testing.T) {
	root := newNode(t)
	for i, row := range specVersions {
		t.Run(row.version, func(t *testing.T) {
			n := &node{Env: root.For(t), subnetFile: root.subnetFile, stateDir: root.stateDir, bridge: root.bridge}
			network := "fl" + strings.ReplaceAll(row.version, ".", "")
			env := n.writeEnv(t, fmt.Sprintf("10.244.%d.0/24", 10+i), 1400)
			gw := env.Subnet.Addr().Next()
			conf := n.conf(row.version, network)
			ns := plugintest.NewNetns(t, "hst-c")
			id := "fl-" + row.version

			out := n.MustExec(n.call("ADD", id, ns, conf.Bytes(t)))
			r, err := version.NewResult(row.version, out)
			if err != nil {
				t.Fatalf("result is not a %s result: %v\n%s", row.version, err, out)
			}
			res, err := current.NewResultFromResult(r)
			if err != nil || len(res.IPs) != 1 {
				t.Fatalf("result %s: %v", out, err)
			}
			ip, _ := netip.AddrFromSlice(res.IPs[0].Address.IP.To4())
			if !env.Subnet.Contains(ip) || ip == gw {
				t.Fatalf("container address %s is not a pod address of FLANNEL_SUBNET %s", ip, env.Subnet)
			}
			addrs, mtu, routes := containerView(t, ns)
			if len(addrs) != 1 || addrs[0] != res.IPs[0].Address.String() {
				t.Fatalf("container has %v, result says %s", addrs, res.IPs[0].Address.String())
			}
			if mtu != 1400 {
				t.Fatalf("container MTU %d, want FLANNEL_MTU 1400", mtu)
			}
			for _, want := range []string{"10.244.0.0/16 via " + gw.String(), "0.0.0.0/0 via " + gw.String()} {
				if !strings.Contains(strings.Join(routes, ","), want) {
					t.Fatalf("container routes %v lack %q", routes, want)
				}
			}
			if err := plugintest.Ping(t, n.HostNS, ip.String()); err != nil {
				t.Fatalf("host cannot reach the pod over %s: %v", n.bridge, err)
			}
			if n.HoistRules() != 0 {
				t.Fatal("FLANNEL_IPMASQ=true: flanneld masquerades, the bridge must not add rules")
			}

			check := conf.WithPrev(t, out).Bytes(t)
			expect(t, n.Env, n.call("CHECK", id, ns, check), row.check, types.ErrIncompatibleCNIVersion)
			expect(t, n.Env, n.call("STATUS", "", "", conf.Bytes(t)), row.status, types.ErrIncompatibleCNIVersion)
			if row.status {
				gcAttachments(t, n, conf, id)
			}

			// subnet.env gone (flanneld stopped, node being drained): DEL still cleans up.
			if err := os.Remove(n.subnetFile); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				n.MustExec(n.call("DEL", id, ns, check))
			}
			if l, v := n.Leases(network), n.Links("veth"); len(l)+len(v) != 0 {
				t.Fatalf("leftovers after DEL without subnet.env: leases %v, veths %v", l, v)
			}
			if saved, _ := os.ReadDir(n.stateDir); len(saved) != 0 {
				t.Fatalf("saved delegate configs left after DEL: %v", saved)
			}
		})
	}
}

// gcAttachments adds a second attachment, then GCs with only the first one
// valid: the second's lease and saved config go, the first's stay.
func gcAttachments(t *testing.T, n *node, conf plugintest.Conf, keep string) {
	t.Helper()
	ns := plugintest.NewNetns(t, "hst-c")
	n.MustExec(n.call("ADD", "gc-stale", ns, conf.Bytes(t)))
	// The runtime lost the container: its netns (and so its veth pair) is gone, DEL never ran.
	if err := nsutil.DeleteNamed(filepath.Base(ns)); err != nil {
		t.Fatal(err)
	}
	stale := netutil.HostVethName("gc-stale", "eth0")
	for deadline := time.Now().Add(10 * time.Second); len(n.Links(stale)) != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("veth %s still there 10s after its netns was deleted", stale)
		}
	}
	network := conf["name"].(string)
	if l := n.Leases(network); len(l) != 2 {
		t.Fatalf("leases %v, want 2", l)
	}
	gc := conf.With("cni.dev/valid-attachments", []any{map[string]any{"containerID": keep, "ifname": "eth0"}})
	n.MustExec(n.call("GC", "", "", gc.Bytes(t)))
	if l := n.Leases(network); len(l) != 1 {
		t.Fatalf("leases after GC %v, want only %s's", l, keep)
	}
	if _, err := os.Stat(filepath.Join(n.stateDir, "gc-stale-eth0")); !os.IsNotExist(err) {
		t.Fatalf("GC kept the stale attachment's saved config: %v", err)
	}
	if _, err := os.Stat(filepath.Join(n.stateDir, keep+"-eth0")); err != nil {
		t.Fatalf("GC removed a valid attachment's saved config: %v", err)
	}
}

func TestIntegrationFlannelAddWithoutSubnetEnv(t *testing.T) {
	n := newNode(t)
	ns := plugintest.NewNetns(t, "hst-c")
	conf := n.conf("1.1.0", "flmissing")
	cerr := expect(t, n.Env, n.call("ADD", "nosubnet", ns, conf.Bytes(t)), false, types.ErrTryAgainLater)
	want := "subnet.env " + n.subnetFile + " not found: flanneld has not written it yet — is flanneld running on this node " +
		"(and, with the kube subnet manager, does the Node have spec.podCIDR)?"
	if cerr.Msg != want {
		t.Fatalf("message %q\nwant %q", cerr.Msg, want)
	}
	cerr = expect(t, n.Env, n.call("STATUS", "", "", conf.Bytes(t)), false, types.ErrPluginNotAvailable)
	if !strings.Contains(cerr.Msg, "flanneld has not written it yet") {
		t.Fatalf("STATUS does not say why: %q", cerr.Msg)
	}
	if v := n.Links("veth"); len(v) != 0 {
		t.Fatalf("failed ADD left veths %v", v)
	}
	// DEL of the attachment that never came up: nothing to do, success.
	n.MustExec(n.call("DEL", "nosubnet", ns, conf.Bytes(t)))

	// flanneld comes up: the kubelet's retry succeeds.
	n.writeEnv(t, "10.244.30.0/24", 1450)
	n.MustExec(n.call("ADD", "nosubnet", ns, conf.Bytes(t)))
	n.MustExec(n.call("DEL", "nosubnet", ns, conf.Bytes(t)))
	if l := n.Leases("flmissing"); len(l) != 0 {
		t.Fatalf("leases left: %v", l)
	}
}

func TestIntegrationFlannelMalformedSubnetEnv(t *testing.T) {
	n := newNode(t)
	if err := os.MkdirAll(filepath.Dir(n.subnetFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.subnetFile, []byte("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=jumbo\nFLANNEL_IPMASQ=true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ns := plugintest.NewNetns(t, "hst-c")
	cerr := expect(t, n.Env, n.call("ADD", "bad", ns, n.conf("1.0.0", "flbad").Bytes(t)), false, types.ErrInvalidNetworkConfig)
	if !strings.Contains(cerr.Msg, n.subnetFile) || !strings.Contains(cerr.Msg, "FLANNEL_MTU") {
		t.Fatalf("message must name the file and the key: %q", cerr.Msg)
	}
}

// A delegate other than bridge is exec'd from CNI_PATH: Debian's reference
// ptp plugin, itself using hoist's host-local, added and deleted through flannel.
func TestIntegrationFlannelExecDelegate(t *testing.T) {
	ptp := "/usr/lib/cni/ptp"
	if _, err := os.Stat(ptp); err != nil {
		t.Fatalf("%s: %v (install it with: apt-get install containernetworking-plugins)", ptp, err)
	}
	bin := t.TempDir()
	for name, target := range map[string]string{
		"flannel": testenv.Binary(t, "cni/flannel"), "host-local": testenv.Binary(t, "cni/host-local"), "ptp": ptp,
	} {
		if err := os.Symlink(target, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	n := &node{Env: plugintest.NewEnv(t, bin), subnetFile: filepath.Join(dir, "subnet.env"), stateDir: filepath.Join(dir, "flannel")}
	env := n.writeEnv(t, "10.244.40.0/24", 1420)
	conf := n.conf("1.0.0", "flptp").With("delegate", map[string]any{"type": "ptp"})
	ns := plugintest.NewNetns(t, "hst-c")

	out := n.MustExec(n.call("ADD", "ptp1", ns, conf.Bytes(t)))
	addrs, mtu, routes := containerView(t, ns)
	if len(addrs) != 1 || !strings.HasPrefix(addrs[0], "10.244.40.") || mtu != 1420 {
		t.Fatalf("ptp delegate: container has %v mtu %d, want an address in %s and mtu 1420\n%s", addrs, mtu, env.Subnet, out)
	}
	if !strings.Contains(strings.Join(routes, ","), "10.244.0.0/16 via ") {
		t.Fatalf("container routes %v lack the cluster CIDR", routes)
	}
	if len(n.Leases("flptp")) != 1 || len(n.Links("veth")) != 1 {
		t.Fatalf("after ADD: leases %v, veths %v", n.Leases("flptp"), n.Links("veth"))
	}
	if err := os.Remove(n.subnetFile); err != nil {
		t.Fatal(err)
	}
	n.MustExec(n.call("DEL", "ptp1", ns, conf.Bytes(t)))
	if l, v := n.Leases("flptp"), n.Links("veth"); len(l)+len(v) != 0 {
		t.Fatalf("leftovers after DEL: leases %v, veths %v", l, v)
	}
}
