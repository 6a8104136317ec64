package flannel

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/hoist-project/hoist/flannel/subnetenv"
)

var testEnv = subnetenv.Env{
	Network: netip.MustParsePrefix("10.244.0.0/16"),
	Subnet:  netip.MustParsePrefix("10.244.3.0/24"),
	MTU:     1450,
	IPMasq:  true,
}

func mustParse(t *testing.T, js string) *NetConf {
	t.Helper()
	c, err := ParseConf([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBuildDelegateDefaults(t *testing.T) {
	conf := mustParse(t, `{"cniVersion":"1.0.0","name":"cbr0","type":"flannel",
		"delegate":{"isDefaultGateway":true,"hairpinMode":true}}`)
	got := BuildDelegate(conf, testEnv)
	want := map[string]any{
		"cniVersion": "1.0.0", "name": "cbr0", "type": "bridge", "bridge": "cni0",
		"mtu": 1450, "ipMasq": false, "isGateway": true, "isDefaultGateway": true, "hairpinMode": true,
		"ipam": map[string]any{
			"type":   "host-local",
			"ranges": []any{[]any{map[string]any{"subnet": "10.244.3.0/24"}}},
			"routes": []any{map[string]any{"dst": "10.244.0.0/16"}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("delegate:\n%#v\nwant:\n%#v", got, want)
	}
	if conf.SubnetFile != DefaultSubnetFile || conf.DataDir != DefaultDataDir {
		t.Fatalf("path defaults not applied: %+v", conf)
	}
}

func TestBuildDelegateOverridesAndNoMasqByFlanneld(t *testing.T) {
	conf := mustParse(t, `{"cniVersion":"0.3.1","name":"net","type":"flannel",
		"delegate":{"bridge":"hst-br9","mtu":1400,"isGateway":false,"name":"ignored","cniVersion":"9.9.9"},
		"ipam":{"dataDir":"/tmp/x","routes":[{"dst":"192.168.0.0/16"}]},
		"runtimeConfig":{"bandwidth":{"ingressRate":1000}}}`)
	env := testEnv
	env.IPMasq = false
	d := BuildDelegate(conf, env)
	if d["bridge"] != "hst-br9" || d["mtu"] != float64(1400) || d["isGateway"] != false {
		t.Fatalf("delegate keys were not kept: %v", d)
	}
	if d["ipMasq"] != true {
		t.Fatalf("flanneld does not masquerade, so the bridge must: ipMasq=%v", d["ipMasq"])
	}
	if bw, _ := json.Marshal(d["runtimeConfig"]); string(bw) != `{"bandwidth":{"ingressRate":1000}}` {
		t.Fatalf("runtimeConfig not passed on: %s", bw)
	}
	if d["name"] != "net" || d["cniVersion"] != "0.3.1" {
		t.Fatalf("name/cniVersion must follow the network config: %v %v", d["name"], d["cniVersion"])
	}
	ipamConf := d["ipam"].(map[string]any)
	routes, _ := json.Marshal(ipamConf["routes"])
	if string(routes) != `[{"dst":"192.168.0.0/16"},{"dst":"10.244.0.0/16"}]` || ipamConf["dataDir"] != "/tmp/x" {
		t.Fatalf("ipam: %v", ipamConf)
	}
	// Building must not edit the parsed config (it is reused for GC).
	if _, ok := conf.Delegate["ipam"]; ok || len(conf.IPAM["routes"].([]any)) != 1 {
		t.Fatalf("config changed by BuildDelegate: %+v", conf)
	}
}

func TestBuildDelegateOtherTypeGetsNoBridgeKeys(t *testing.T) {
	d := BuildDelegate(mustParse(t, `{"name":"n","delegate":{"type":"ipvlan","master":"eth0"}}`), testEnv)
	if _, ok := d["bridge"]; ok {
		t.Fatalf("non-bridge delegate got bridge keys: %v", d)
	}
	if _, ok := d["isGateway"]; ok {
		t.Fatalf("non-bridge delegate got isGateway: %v", d)
	}
}

func cniCode(t *testing.T, err error) (uint, string) {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("not a CNI error: %v", err)
	}
	return e.Code, e.Msg
}

func TestParseConfErrors(t *testing.T) {
	for js, want := range map[string]string{
		`{"type":"flannel"}`:                                 `no "name"`,
		`{"name":"n","delegate":{"type":7}}`:                 `delegate "type"`,
		`{"name":"n","ipam":{"type":""}}`:                    `ipam "type"`,
		`{"name":"n","ipam":{"routes":{"dst":"1.0.0.0/8"}}}`: `ipam "routes"`,
	} {
		_, err := ParseConf([]byte(js))
		code, msg := cniCode(t, err)
		if code != types.ErrInvalidNetworkConfig || !strings.Contains(msg, want) {
			t.Errorf("%s: code %d %q, want 7 and %q", js, code, msg, want)
		}
	}
	_, err := ParseConf([]byte(`{"name":`))
	if code, _ := cniCode(t, err); code != types.ErrDecodingFailure {
		t.Fatalf("bad JSON: code %d, want 6", code)
	}
}

func TestSubnetEnvErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "subnet.env")
	_, err := readSubnetEnv(missing)
	code, msg := cniCode(t, err)
	want := "subnet.env " + missing + " not found: flanneld has not written it yet — is flanneld running on this node " +
		"(and, with the kube subnet manager, does the Node have spec.podCIDR)?"
	if code != types.ErrTryAgainLater || msg != want {
		t.Fatalf("missing subnet.env: code %d %q\nwant 11 %q", code, msg, want)
	}
	if strings.Contains(msg, "\n") {
		t.Fatal("the message must be one line")
	}

	good := string(testEnv.Render())
	for name, tc := range map[string]struct{ content, key string }{
		"bad mtu":          {strings.Replace(good, "FLANNEL_MTU=1450", "FLANNEL_MTU=big", 1), "FLANNEL_MTU"},
		"missing subnet":   {"FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n", "FLANNEL_SUBNET"},
		"subnet outside":   {strings.Replace(good, "10.244.3.1/24", "10.9.3.1/24", 1), "FLANNEL_SUBNET=10.9.3.0/24 is not inside FLANNEL_NETWORK"},
		"mtu out of range": {strings.Replace(good, "FLANNEL_MTU=1450", "FLANNEL_MTU=20", 1), "FLANNEL_MTU=20"},
		"ipv6":             {strings.NewReplacer("10.244.0.0/16", "fd00::/48", "10.244.3.1/24", "fd00::1/64").Replace(good), "IPv4"},
		"tiny subnet":      {strings.Replace(good, "10.244.3.1/24", "10.244.3.1/31", 1), "no room"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := readSubnetEnv(p)
		code, msg := cniCode(t, err)
		if code != types.ErrInvalidNetworkConfig || !strings.Contains(msg, p) || !strings.Contains(msg, tc.key) {
			t.Errorf("%s: code %d %q, want 7 naming %s and %q", name, code, msg, p, tc.key)
		}
	}
	p := filepath.Join(dir, "ok.env")
	if err := subnetenv.Write(p, testEnv); err != nil {
		t.Fatal(err)
	}
	if env, err := readSubnetEnv(p); err != nil || env != testEnv {
		t.Fatalf("read %+v, %v", env, err)
	}
}

// fakeDelegate records what each command was given.
type fakeDelegate struct {
	calls []string         // "ADD", "DEL", ...
	stdin []map[string]any // the delegate config of each call
	err   error            // returned by every call
}

func (f *fakeDelegate) record(cmd string, args *skel.CmdArgs) error {
	var m map[string]any
	if err := json.Unmarshal(args.StdinData, &m); err != nil {
		return err
	}
	f.calls = append(f.calls, cmd)
	f.stdin = append(f.stdin, m)
	return f.err
}

func (f *fakeDelegate) Add(_ context.Context, a *skel.CmdArgs) (*current.Result, error) {
	if err := f.record("ADD", a); err != nil {
		return nil, err
	}
	return &current.Result{CNIVersion: current.ImplementedSpecVersion}, nil
}
func (f *fakeDelegate) Del(_ context.Context, a *skel.CmdArgs) error    { return f.record("DEL", a) }
func (f *fakeDelegate) Check(_ context.Context, a *skel.CmdArgs) error  { return f.record("CHECK", a) }
func (f *fakeDelegate) GC(_ context.Context, a *skel.CmdArgs) error     { return f.record("GC", a) }
func (f *fakeDelegate) Status(_ context.Context, a *skel.CmdArgs) error { return f.record("STATUS", a) }

type fixture struct {
	fake       *fakeDelegate
	p          Plugin
	subnetFile string
	dataDir    string
}

func newFixture(t *testing.T) *fixture {
	dir := t.TempDir()
	f := &fixture{fake: &fakeDelegate{}, subnetFile: filepath.Join(dir, "subnet.env"), dataDir: filepath.Join(dir, "data")}
	f.p = Plugin{DelegateFor: func(string) Delegate { return f.fake }}
	return f
}

func (f *fixture) conf(t *testing.T, extra string) *NetConf {
	return mustParse(t, `{"cniVersion":"1.1.0","name":"cbr0","type":"flannel","subnetFile":"`+f.subnetFile+
		`","dataDir":"`+f.dataDir+`"`+extra+`}`)
}

func (f *fixture) writeEnv(t *testing.T, env subnetenv.Env) {
	if err := subnetenv.Write(f.subnetFile, env); err != nil {
		t.Fatal(err)
	}
}

func args(id string) *skel.CmdArgs {
	return &skel.CmdArgs{ContainerID: id, IfName: "eth0", Netns: "/var/run/netns/x"}
}

func TestAddSavesConfigAndDelUsesItAfterSubnetEnvIsGone(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.writeEnv(t, testEnv)
	if _, err := f.p.Add(ctx, args("c1"), f.conf(t, "")); err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(filepath.Join(f.dataDir, "c1-eth0"))
	if err != nil {
		t.Fatalf("ADD did not save the delegate config: %v", err)
	}
	var savedConf map[string]any
	_ = json.Unmarshal(saved, &savedConf)
	if !reflect.DeepEqual(savedConf, f.fake.stdin[0]) {
		t.Fatalf("saved %v, delegate got %v", savedConf, f.fake.stdin[0])
	}

	// flanneld moved the node to another subnet, then subnet.env vanished.
	other := testEnv
	other.Subnet = netip.MustParsePrefix("10.244.9.0/24")
	f.writeEnv(t, other)
	if err := os.Remove(f.subnetFile); err != nil {
		t.Fatal(err)
	}
	prev := `,"prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.244.3.2/24"}]}`
	if err := f.p.Del(ctx, args("c1"), f.conf(t, prev)); err != nil {
		t.Fatal(err)
	}
	del := f.fake.stdin[1]
	if savedSubnet(del) != "10.244.3.0/24" || del["prevResult"] == nil {
		t.Fatalf("DEL did not use the saved config with the prevResult: %v", del)
	}
	if _, err := os.Stat(filepath.Join(f.dataDir, "c1-eth0")); !os.IsNotExist(err) {
		t.Fatalf("saved config not removed after DEL: %v", err)
	}
	// Repeated DEL with nothing left at all: success, no delegate call.
	if err := f.p.Del(ctx, args("c1"), f.conf(t, "")); err != nil {
		t.Fatal(err)
	}
	if len(f.fake.calls) != 2 {
		t.Fatalf("calls %v, want ADD DEL", f.fake.calls)
	}
}

func TestDelWithoutSavedConfigUsesSubnetEnv(t *testing.T) {
	f := newFixture(t)
	f.writeEnv(t, testEnv)
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dataDir, "c2-eth0"), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.p.Del(context.Background(), args("c2"), f.conf(t, "")); err != nil {
		t.Fatal(err)
	}
	if len(f.fake.calls) != 1 || savedSubnet(f.fake.stdin[0]) != "10.244.3.0/24" {
		t.Fatalf("DEL did not fall back to subnet.env: %v %v", f.fake.calls, f.fake.stdin)
	}
	if _, err := os.Stat(filepath.Join(f.dataDir, "c2-eth0")); !os.IsNotExist(err) {
		t.Fatal("unreadable saved config not removed")
	}
}

func TestDelKeepsSavedConfigWhenDelegateFails(t *testing.T) {
	f := newFixture(t)
	f.writeEnv(t, testEnv)
	if _, err := f.p.Add(context.Background(), args("c3"), f.conf(t, "")); err != nil {
		t.Fatal(err)
	}
	f.fake.err = errors.New("boom")
	if err := f.p.Del(context.Background(), args("c3"), f.conf(t, "")); err == nil {
		t.Fatal("DEL hid the delegate's failure")
	}
	if _, err := os.Stat(filepath.Join(f.dataDir, "c3-eth0")); err != nil {
		t.Fatalf("saved config lost after a failed DEL (a retry needs it): %v", err)
	}
}

func TestAddWithoutSubnetEnvTouchesNothing(t *testing.T) {
	f := newFixture(t)
	_, err := f.p.Add(context.Background(), args("c4"), f.conf(t, ""))
	if code, _ := cniCode(t, err); code != types.ErrTryAgainLater {
		t.Fatalf("code %d, want 11", code)
	}
	if _, err := os.Stat(f.dataDir); !os.IsNotExist(err) || len(f.fake.calls) != 0 {
		t.Fatalf("ADD without subnet.env left state: %v, calls %v", err, f.fake.calls)
	}
}

func TestCheck(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.writeEnv(t, testEnv)
	err := f.p.Check(ctx, args("c5"), f.conf(t, ""))
	if _, msg := cniCode(t, err); !strings.Contains(msg, "no saved delegate config for container c5") {
		t.Fatalf("CHECK without ADD: %q", msg)
	}
	if _, err := f.p.Add(ctx, args("c5"), f.conf(t, "")); err != nil {
		t.Fatal(err)
	}
	if err := f.p.Check(ctx, args("c5"), f.conf(t, "")); err != nil {
		t.Fatal(err)
	}
	if f.fake.calls[1] != "CHECK" || savedSubnet(f.fake.stdin[1]) != "10.244.3.0/24" {
		t.Fatalf("CHECK did not delegate with the saved config: %v", f.fake.calls)
	}
	moved := testEnv
	moved.Subnet = netip.MustParsePrefix("10.244.4.0/24")
	f.writeEnv(t, moved)
	err = f.p.Check(ctx, args("c5"), f.conf(t, ""))
	if _, msg := cniCode(t, err); !strings.Contains(msg, "this node's subnet is now 10.244.4.0/24") {
		t.Fatalf("CHECK after the node's subnet moved: %q", msg)
	}
}

func TestGCRunsEveryDistinctConfigAndRemovesStaleFiles(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.writeEnv(t, testEnv)
	for _, id := range []string{"keep", "gone"} {
		if _, err := f.p.Add(ctx, args(id), f.conf(t, "")); err != nil {
			t.Fatal(err)
		}
	}
	// Another flannel network sharing the state directory: not this GC's business.
	if _, err := f.p.Add(ctx, args("other"), mustParse(t, `{"cniVersion":"1.1.0","name":"net2","subnetFile":"`+f.subnetFile+`","dataDir":"`+f.dataDir+`"}`)); err != nil {
		t.Fatal(err)
	}
	moved := testEnv
	moved.Subnet = netip.MustParsePrefix("10.244.5.0/24")
	f.writeEnv(t, moved)
	f.fake.calls, f.fake.stdin = nil, nil
	gc := f.conf(t, `,"cni.dev/valid-attachments":[{"containerID":"keep","ifname":"eth0"}]`)
	a := &skel.CmdArgs{StdinData: []byte(`{"cniVersion":"1.1.0","name":"cbr0","cni.dev/valid-attachments":[{"containerID":"keep","ifname":"eth0"}]}`)}
	if err := f.p.GC(ctx, a, gc); err != nil {
		t.Fatal(err)
	}
	var subnets []string
	for i, c := range f.fake.calls {
		if c != "GC" {
			t.Fatalf("calls %v", f.fake.calls)
		}
		valid, _ := json.Marshal(f.fake.stdin[i][validAttachmentsKey])
		if string(valid) != `[{"containerID":"keep","ifname":"eth0"}]` {
			t.Fatalf("GC config lacks the valid attachments: %s", valid)
		}
		if f.fake.stdin[i]["name"] != "cbr0" {
			t.Fatalf("GC of cbr0 ran with another network's config: %v", f.fake.stdin[i])
		}
		subnets = append(subnets, savedSubnet(f.fake.stdin[i]))
	}
	if strings.Join(subnets, ",") != "10.244.3.0/24,10.244.5.0/24" {
		t.Fatalf("GC ran for subnets %v, want the saved one and the current one once each", subnets)
	}
	entries, _ := os.ReadDir(f.dataDir)
	if len(entries) != 2 || entries[0].Name() != "keep-eth0" || entries[1].Name() != "other-eth0" {
		t.Fatalf("saved configs after GC: %v, want keep-eth0 and the other network's other-eth0", entries)
	}
}

func TestStatus(t *testing.T) {
	f := newFixture(t)
	err := f.p.Status(context.Background(), args(""), f.conf(t, ""))
	code, msg := cniCode(t, err)
	if code != types.ErrPluginNotAvailable || !strings.Contains(msg, "flanneld has not written it yet") {
		t.Fatalf("STATUS without subnet.env: %d %q, want 50 and the reason", code, msg)
	}
	f.writeEnv(t, testEnv)
	if err := f.p.Status(context.Background(), args(""), f.conf(t, "")); err != nil || f.fake.calls[0] != "STATUS" {
		t.Fatalf("STATUS with subnet.env: %v %v", err, f.fake.calls)
	}
}

// The binary is exec'd for every pod: it must stay free of heavy imports.
func TestPluginHasNoHeavyImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/hoist-project/hoist/cni-plugins/flannel").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "github.com/hoist-project/hoist/internal/cni/bridge") {
		t.Fatalf("go list output does not look like the plugin's dependencies:\n%s", out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"k8s.io/client-go", "containerd", "cadvisor", "go.etcd.io"} {
			if strings.Contains(dep, banned) {
				t.Errorf("cni-plugins/flannel imports %s (banned: %s)", dep, banned)
			}
		}
	}
}
