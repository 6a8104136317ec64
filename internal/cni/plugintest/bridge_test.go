package plugintest

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"

	"github.com/hoist-project/hoist/internal/cni/netutil"
	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/internal/testenv"
)

func add(e *Env, conf Conf, id, netns string) *current.Result {
	e.t.Helper()
	out := e.MustExec(Call{Plugin: "bridge", Command: "ADD", ContainerID: id, Netns: netns, Config: conf.Bytes(e.t)})
	r, err := version.NewResult(conf["cniVersion"].(string), out)
	if err != nil {
		e.t.Fatalf("decode result: %v\n%s", err, out)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func containerAddrs(t *testing.T, netns, ifname string) []string {
	t.Helper()
	var out []string
	InNS(t, netns, func() error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		for _, a := range addrs {
			if a.IP.IsGlobalUnicast() {
				if a.Flags&0x40 != 0 { // IFA_F_TENTATIVE: DAD would delay use
					return fmt.Errorf("address %s is tentative", a.IPNet)
				}
				out = append(out, a.IPNet.String())
			}
		}
		return err
	})
	return out
}

func TestIntegrationBridgeRollbackLeavesNothing(t *testing.T) {
	e := NewEnv(t, "")
	br := testenv.UniqueName("hst-br")
	conf := e.BridgeConf("1.0.0", "rollback", br, "10.99.0.0/24")
	// The route's gateway is unreachable, so ADD fails after lease, veth and addresses exist.
	conf.IPAM()["routes"] = []any{map[string]any{"dst": "192.168.77.0/24", "gw": "172.31.9.9"}}
	ns := NewNetns(t, "hst-c")
	_, cerr := e.Exec(Call{Plugin: "bridge", Command: "ADD", ContainerID: "rb1", Netns: ns, Config: conf.Bytes(t)})
	if cerr == nil || !strings.Contains(cerr.Msg, "192.168.77.0/24") {
		t.Fatalf("ADD with an unreachable route gateway must fail at the route step, got %+v", cerr)
	}
	if l := e.Leases("rollback"); len(l) != 0 {
		t.Fatalf("failed ADD left leases %v", l)
	}
	if l := e.Links("veth"); len(l) != 0 {
		t.Fatalf("failed ADD left veths %v", l)
	}
	if n := e.HoistRules(); n != 0 {
		t.Fatalf("failed ADD left %d iptables lines", n)
	}
	InNS(t, ns, func() error {
		if _, err := netlink.LinkByName("eth0"); err == nil {
			return fmt.Errorf("eth0 still exists in the container")
		}
		return nil
	})

	// Exhaustion: a one-address range; the second ADD fails naming it and leaves no veth.
	conf = e.BridgeConf("1.0.0", "tiny", br, "10.98.0.0/24")
	conf.IPAM()["ranges"] = []any{[]any{map[string]any{"subnet": "10.98.0.0/24", "rangeStart": "10.98.0.5", "rangeEnd": "10.98.0.5"}}}
	add(e, conf, "full1", NewNetns(t, "hst-c"))
	_, cerr = e.Exec(Call{Plugin: "bridge", Command: "ADD", ContainerID: "full2", Netns: NewNetns(t, "hst-c"), Config: conf.Bytes(t)})
	if cerr == nil || !strings.Contains(cerr.Msg, "10.98.0.0/24") {
		t.Fatalf("exhausted ADD must fail naming the range, got %+v", cerr)
	}
	if l := e.Links(netutil.HostVethName("full2", "eth0")); len(l) != 0 {
		t.Fatalf("exhausted ADD left veth %v", l)
	}
	if l := e.Leases("tiny"); len(l) != 1 {
		t.Fatalf("leases after exhausted ADD: %v, want only full1's", l)
	}
}

func TestIntegrationBridgeDelAfterNetnsGone(t *testing.T) {
	e := NewEnv(t, "")
	conf := e.BridgeConf("1.0.0", "gone", testenv.UniqueName("hst-br"), "10.97.0.0/24")
	name := testenv.UniqueName("hst-c")
	ns, err := nsutil.CreateNamed(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nsutil.DeleteNamed(name) })
	add(e, conf, "g1", ns)
	if err := nsutil.DeleteNamed(name); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // DEL is idempotent
		e.MustExec(Call{Plugin: "bridge", Command: "DEL", ContainerID: "g1", Netns: ns, Config: conf.Bytes(t)})
	}
	e.MustExec(Call{Plugin: "bridge", Command: "DEL", ContainerID: "g1", Netns: "", Config: conf.Bytes(t)})
	if l := e.Leases("gone"); len(l) != 0 {
		t.Fatalf("DEL without netns must still release the lease: %v", l)
	}
	if l := e.Links("veth"); len(l) != 0 {
		t.Fatalf("veths left: %v", l)
	}
	if n := e.HoistRules(); n != 0 {
		t.Fatalf("%d iptables lines left", n)
	}
}

func TestIntegrationBridgeCheckDetectsRemovedAddress(t *testing.T) {
	e := NewEnv(t, "")
	conf := e.BridgeConf("1.1.0", "check", testenv.UniqueName("hst-br"), "10.96.10.0/24", "fd00:96::/64")
	ns := NewNetns(t, "hst-c")
	out := e.MustExec(Call{Plugin: "bridge", Command: "ADD", ContainerID: "k1", Netns: ns, Config: conf.Bytes(t)})
	checkConf := conf.WithPrev(t, out).Bytes(t)
	e.MustExec(Call{Plugin: "bridge", Command: "CHECK", ContainerID: "k1", Netns: ns, Config: checkConf})
	addrs := containerAddrs(t, ns, "eth0")
	if len(addrs) != 2 {
		t.Fatalf("container addresses %v, want one IPv4 and one IPv6", addrs)
	}
	InNS(t, ns, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		_, ipn, _ := net.ParseCIDR(addrs[0])
		ipn.IP = net.ParseIP(strings.Split(addrs[0], "/")[0])
		return netlink.AddrDel(l, &netlink.Addr{IPNet: ipn})
	})
	_, cerr := e.Exec(Call{Plugin: "bridge", Command: "CHECK", ContainerID: "k1", Netns: ns, Config: checkConf})
	if cerr == nil || !strings.Contains(cerr.Msg, "missing") {
		t.Fatalf("CHECK must report the removed address, got %+v", cerr)
	}
	e.MustExec(Call{Plugin: "bridge", Command: "DEL", ContainerID: "k1", Netns: ns, Config: conf.Bytes(t)})
}

func TestIntegrationBridgeConcurrentAdds(t *testing.T) {
	e := NewEnv(t, "")
	conf := e.BridgeConf("1.0.0", "many", testenv.UniqueName("hst-br"), "10.95.0.0/24")
	const n = 50
	nss := make([]string, n)
	for i := range nss {
		nss[i] = NewNetns(t, "hst-c")
	}
	ips := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, cerr := e.Exec(Call{Plugin: "bridge", Command: "ADD", ContainerID: fmt.Sprintf("par%d", i), Netns: nss[i], Config: conf.Bytes(t)})
			if cerr != nil {
				errs[i] = fmt.Errorf("ADD %d: code %d %s", i, cerr.Code, cerr.Msg)
				return
			}
			var res current.Result
			if err := json.Unmarshal(out, &res); err != nil || len(res.IPs) != 1 {
				errs[i] = fmt.Errorf("ADD %d result %s: %v", i, out, err)
				return
			}
			ips[i] = res.IPs[0].Address.IP.String()
		}()
	}
	wg.Wait()
	seen := map[string]int{}
	for i := range ips {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if j, dup := seen[ips[i]]; dup {
			t.Fatalf("containers %d and %d both got %s", j, i, ips[i])
		}
		seen[ips[i]] = i
	}
	if l := e.Leases("many"); len(l) != n {
		t.Fatalf("%d leases, want %d", len(l), n)
	}
	for i := 0; i < n; i++ {
		e.MustExec(Call{Plugin: "bridge", Command: "DEL", ContainerID: fmt.Sprintf("par%d", i), Netns: nss[i], Config: conf.Bytes(t)})
	}
	if l, v, r := e.Leases("many"), e.Links("veth"), e.HoistRules(); len(l)+len(v)+r != 0 {
		t.Fatalf("leftovers after DEL: leases %v, veths %v, %d rules", l, v, r)
	}
}

func TestIntegrationBridgeGCAfterCrash(t *testing.T) {
	e := NewEnv(t, "")
	conf := e.BridgeConf("1.1.0", "crash", testenv.UniqueName("hst-br"), "10.94.0.0/24")
	names := []string{testenv.UniqueName("hst-c"), testenv.UniqueName("hst-c"), testenv.UniqueName("hst-c")}
	for i, name := range names {
		ns, err := nsutil.CreateNamed(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nsutil.DeleteNamed(name) })
		add(e, conf, fmt.Sprintf("crash%d", i), ns)
	}
	// The "crash": two containers vanish without a DEL.
	for _, name := range names[1:] {
		if err := nsutil.DeleteNamed(name); err != nil {
			t.Fatal(err)
		}
	}
	gc := conf.With("cni.dev/valid-attachments", []any{map[string]any{"containerID": "crash0", "ifname": "eth0"}})
	e.MustExec(Call{Plugin: "bridge", Command: "GC", Config: gc.Bytes(t)})
	if l := e.Leases("crash"); len(l) != 1 {
		t.Fatalf("after GC leases %v, want only crash0's", l)
	}
	save := e.Run("iptables-save", "-t", "nat")
	if !strings.Contains(save, "id=crash0 ") || strings.Contains(save, "id=crash1 ") || strings.Contains(save, "id=crash2 ") {
		t.Fatalf("GC must keep crash0's masquerade chain and drop the others:\n%s", save)
	}
	e.MustExec(Call{Plugin: "bridge", Command: "GC", Config: conf.With("cni.dev/valid-attachments", []any{}).Bytes(t)})
	if l, r := e.Leases("crash"), e.HoistRules(); len(l)+r != 0 {
		t.Fatalf("GC with no valid attachments left leases %v and %d rules", l, r)
	}
}

func TestIntegrationInvalidConfigs(t *testing.T) {
	e := NewEnv(t, "")
	ns := NewNetns(t, "hst-c")
	good := e.BridgeConf("1.0.0", "bad", testenv.UniqueName("hst-br"), "10.93.0.0/24")
	withIPAM := func(ipam map[string]any) Conf {
		ipam["type"], ipam["dataDir"] = "host-local", e.DataDir
		return good.With("ipam", ipam)
	}
	cases := []struct {
		name   string
		config []byte
		code   uint
		msg    string
	}{
		{"bad subnet", withIPAM(map[string]any{"subnet": "10.93.0.0/40"}).Bytes(t), types.ErrInvalidNetworkConfig, "not a CIDR"},
		{"overlapping ranges", withIPAM(map[string]any{"ranges": []any{
			[]any{map[string]any{"subnet": "10.93.0.0/24"}}, []any{map[string]any{"subnet": "10.93.0.0/25"}}}}).Bytes(t),
			types.ErrInvalidNetworkConfig, "overlaps"},
		{"unknown cniVersion", good.With("cniVersion", "9.9.9").Bytes(t), types.ErrIncompatibleCNIVersion, "incompatible"},
		{"missing name", good.With("name", "").Bytes(t), types.ErrInvalidNetworkConfig, "name"},
		{"missing ipam", good.With("ipam", map[string]any{}).Bytes(t), types.ErrInvalidNetworkConfig, "ipam"},
		{"no ranges", withIPAM(map[string]any{}).Bytes(t), types.ErrInvalidNetworkConfig, "no address ranges"},
		{"not JSON", []byte(`{"cniVersion":"1.0.0",`), types.ErrDecodingFailure, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, cerr := e.For(t).Exec(Call{Plugin: "bridge", Command: "ADD", ContainerID: "bad", Netns: ns, Config: c.config})
			if cerr == nil || cerr.Code != c.code || !strings.Contains(cerr.Msg+cerr.Details, c.msg) {
				t.Fatalf("got %+v, want code %d mentioning %q", cerr, c.code, c.msg)
			}
		})
	}
	if l := e.Links("veth"); len(l) != 0 {
		t.Fatalf("invalid configs left veths %v", l)
	}
}

func TestIntegrationBridgeLinkOptions(t *testing.T) {
	e := NewEnv(t, "")
	brName := testenv.UniqueName("hst-br")
	conf := e.BridgeConf("1.0.0", "opts", brName, "10.89.0.0/24").With("mtu", 1400).With("promiscMode", true).With("ipMasq", false)
	ns := NewNetns(t, "hst-c")
	res := add(e, conf, "opt1", ns)
	if res.Interfaces[0].Name != brName || res.Interfaces[2].Name != "eth0" || res.Interfaces[2].Sandbox != ns {
		t.Fatalf("result interfaces %v", res.Interfaces)
	}
	InNS(t, e.HostNS, func() error {
		br, err := netlink.LinkByName(brName)
		if err != nil {
			return err
		}
		if br.Attrs().Promisc == 0 {
			return fmt.Errorf("bridge is not promiscuous")
		}
		host, err := netlink.LinkByName(netutil.HostVethName("opt1", "eth0"))
		if err != nil {
			return err
		}
		pi, err := netlink.LinkGetProtinfo(host)
		if err != nil {
			return err
		}
		if !pi.Hairpin {
			return fmt.Errorf("hairpin mode is off on %s", host.Attrs().Name)
		}
		if host.Attrs().MTU != 1400 || host.Attrs().MasterIndex != br.Attrs().Index {
			return fmt.Errorf("host veth mtu %d master %d, want 1400 on %d", host.Attrs().MTU, host.Attrs().MasterIndex, br.Attrs().Index)
		}
		return nil
	})
	InNS(t, ns, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if l.Attrs().MTU != 1400 {
			return fmt.Errorf("container mtu %d, want 1400", l.Attrs().MTU)
		}
		routes, err := netlink.RouteList(l, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
				if r.Gw.String() == "10.89.0.1" {
					return nil
				}
			}
		}
		return fmt.Errorf("no default route via 10.89.0.1: %v", routes)
	})
	e.MustExec(Call{Plugin: "bridge", Command: "DEL", ContainerID: "opt1", Netns: ns, Config: conf.Bytes(t)})
}
