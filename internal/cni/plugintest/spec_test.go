package plugintest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"

	"github.com/hoist-project/hoist/internal/testenv"
)

// specVersions is every version the plugins accept, one table row each.
var specVersions = []struct {
	version       string
	check, status bool // CHECK needs 0.4.0+, STATUS and GC need 1.1.0
}{
	{"0.3.0", false, false},
	{"0.3.1", false, false},
	{"0.4.0", true, false},
	{"1.0.0", true, false},
	{"1.1.0", true, true},
}

func TestIntegrationSpecVersions(t *testing.T) {
	root := NewEnv(t, "")
	br := testenv.UniqueName("hst-br")
	for i, row := range specVersions {
		t.Run(row.version, func(t *testing.T) {
			e := root.For(t)
			network := "spec" + strings.ReplaceAll(row.version, ".", "")
			conf := e.BridgeConf(row.version, network, br, "10.92."+string(rune('0'+i))+".0/24", "fd00:92:"+string(rune('0'+i))+"::/64")
			ns := NewNetns(t, "hst-c")
			id := "spec-" + row.version

			out := e.MustExec(Call{Plugin: "loopback", Command: "ADD", ContainerID: id, Netns: ns, IfName: "lo",
				Config: Conf{"cniVersion": row.version, "name": network, "type": "loopback"}.Bytes(t)})
			if _, err := version.NewResult(row.version, out); err != nil {
				t.Fatalf("loopback result is not a %s result: %v", row.version, err)
			}
			InNS(t, ns, func() error {
				lo, err := netlink.LinkByName("lo")
				if err == nil && lo.Attrs().OperState != netlink.OperUnknown && lo.Attrs().RawFlags&1 == 0 {
					t.Errorf("lo is not up")
				}
				return err
			})

			res := add(e, conf, id, ns)
			var raw map[string]any
			_ = json.Unmarshal(e.MustExec(Call{Plugin: "bridge", Command: "ADD", ContainerID: id, Netns: ns, Config: conf.Bytes(t)}), &raw)
			if raw["cniVersion"] != row.version {
				t.Fatalf("result cniVersion %v, want %s", raw["cniVersion"], row.version)
			}
			if len(res.IPs) != 2 || len(res.Interfaces) != 3 {
				t.Fatalf("result %s: want 2 IPs and 3 interfaces", res)
			}
			got := containerAddrs(t, ns, "eth0")
			if len(got) != 2 || got[0] != res.IPs[0].Address.String() && got[1] != res.IPs[0].Address.String() {
				t.Fatalf("container has %v, result says %v and %v", got, res.IPs[0].Address, res.IPs[1].Address)
			}
			for _, ipc := range res.IPs { // the host reaches the container over the bridge, both families
				if err := Ping(t, e.HostNS, ipc.Address.IP.String()); err != nil {
					t.Fatal(err)
				}
			}

			check := conf.WithPrev(t, e.MustExec(Call{Plugin: "bridge", Command: "ADD", ContainerID: id, Netns: ns, Config: conf.Bytes(t)})).Bytes(t)
			expectCode(t, e, Call{Plugin: "bridge", Command: "CHECK", ContainerID: id, Netns: ns, Config: check}, row.check)
			expectCode(t, e, Call{Plugin: "bridge", Command: "STATUS", Config: conf.Bytes(t)}, row.status)
			expectCode(t, e, Call{Plugin: "host-local", Command: "STATUS", Config: conf.Bytes(t)}, row.status)
			gc := conf.With("cni.dev/valid-attachments", []any{map[string]any{"containerID": id, "ifname": "eth0"}})
			expectCode(t, e, Call{Plugin: "bridge", Command: "GC", Config: gc.Bytes(t)}, row.status)
			if l := e.Leases(network); len(l) != 2 {
				t.Fatalf("GC removed a valid attachment's leases: %v", l)
			}

			// host-local on its own, as any plugin would exec it.
			ipamOut := e.MustExec(Call{Plugin: "host-local", Command: "ADD", ContainerID: id, Netns: ns, IfName: "net1", Config: conf.Bytes(t)})
			if r, err := version.NewResult(row.version, ipamOut); err != nil || !strings.Contains(string(ipamOut), "10.92.") {
				t.Fatalf("host-local result %s: %v %v", ipamOut, r, err)
			}
			if l := e.Leases(network); len(l) != 4 {
				t.Fatalf("leases %v, want two per attachment", l)
			}
			e.MustExec(Call{Plugin: "host-local", Command: "DEL", ContainerID: id, Netns: ns, IfName: "net1", Config: conf.Bytes(t)})

			for range 2 {
				e.MustExec(Call{Plugin: "bridge", Command: "DEL", ContainerID: id, Netns: ns, Config: conf.Bytes(t)})
				e.MustExec(Call{Plugin: "loopback", Command: "DEL", ContainerID: id, Netns: ns, IfName: "lo", Config: Conf{"cniVersion": row.version, "name": network, "type": "loopback"}.Bytes(t)})
			}
			if l, v := e.Leases(network), e.Links("veth"); len(l)+len(v) != 0 {
				t.Fatalf("leftovers after DEL: leases %v, veths %v", l, v)
			}
		})
	}
	if n := root.HoistRules(); n != 0 {
		t.Fatalf("%d iptables lines left", n)
	}
}

// expectCode runs c and expects success when ok, else error code 1 (incompatible version).
func expectCode(t *testing.T, e *Env, c Call, ok bool) {
	t.Helper()
	_, cerr := e.Exec(c)
	switch {
	case ok && cerr != nil:
		t.Fatalf("%s %s: %d %s", c.Plugin, c.Command, cerr.Code, cerr.Msg)
	case !ok && (cerr == nil || cerr.Code != types.ErrIncompatibleCNIVersion):
		t.Fatalf("%s %s must fail with code 1 for this version, got %+v", c.Plugin, c.Command, cerr)
	}
}

func TestIntegrationVersionCommand(t *testing.T) {
	e := NewEnv(t, "")
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		out := e.MustExec(Call{Plugin: p, Command: "VERSION", Config: []byte(`{"cniVersion":"1.1.0"}`)})
		info, err := (&version.PluginDecoder{}).Decode(out)
		if err != nil {
			t.Fatalf("%s VERSION: %v", p, err)
		}
		want := make([]string, 0, len(specVersions))
		for _, r := range specVersions {
			want = append(want, r.version)
		}
		if strings.Join(info.SupportedVersions(), ",") != strings.Join(want, ",") {
			t.Fatalf("%s supports %v, want %v", p, info.SupportedVersions(), want)
		}
	}
}
