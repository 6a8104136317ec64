package plugintest

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/internal/testenv"
)

// runtimeDriver drives a conflist the way a container runtime would.
type runtimeDriver interface {
	add(t *testing.T, netns string) *current.Result
	check(t *testing.T, netns string)
	del(t *testing.T, netns string)
	gcAll(t *testing.T)
}

// cnitoolDriver runs the cnitool pinned as a go tool in go.mod.
type cnitoolDriver struct {
	e              *Env
	bin, confDir   string
	network, ports string
}

func (d *cnitoolDriver) run(t *testing.T, args ...string) string {
	t.Helper()
	env := []string{"CNI_PATH=" + d.e.BinDir, "NETCONFPATH=" + d.confDir, "CAP_ARGS=" + d.ports, "PATH=" + os.Getenv("PATH")}
	out, err := RunIn(d.e.HostNS, env, nil, d.bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (d *cnitoolDriver) add(t *testing.T, netns string) *current.Result {
	var res current.Result
	if err := json.Unmarshal([]byte(d.run(t, "add", d.network, netns)), &res); err != nil {
		t.Fatalf("cnitool add output: %v", err)
	}
	return &res
}
func (d *cnitoolDriver) check(t *testing.T, netns string) { d.run(t, "check", d.network, netns) }
func (d *cnitoolDriver) del(t *testing.T, netns string)   { d.run(t, "del", d.network, netns) }
func (d *cnitoolDriver) gcAll(t *testing.T)               { d.run(t, "gc", d.network, "/nonexistent") }

// libcniDriver calls libcni in process, from a thread in the host namespace.
type libcniDriver struct {
	e     *Env
	cni   *libcni.CNIConfig
	list  *libcni.NetworkConfigList
	ports []map[string]any
}

func (d *libcniDriver) rt(netns string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: "libcni-" + filepath.Base(netns), NetNS: netns, IfName: "eth0",
		CapabilityArgs: map[string]any{"portMappings": d.ports}}
}

func (d *libcniDriver) add(t *testing.T, netns string) *current.Result {
	var res *current.Result
	InNS(t, d.e.HostNS, func() error {
		r, err := d.cni.AddNetworkList(context.Background(), d.list, d.rt(netns))
		if err != nil {
			return err
		}
		res, err = current.NewResultFromResult(r)
		return err
	})
	return res
}
func (d *libcniDriver) check(t *testing.T, netns string) {
	InNS(t, d.e.HostNS, func() error { return d.cni.CheckNetworkList(context.Background(), d.list, d.rt(netns)) })
}
func (d *libcniDriver) del(t *testing.T, netns string) {
	InNS(t, d.e.HostNS, func() error { return d.cni.DelNetworkList(context.Background(), d.list, d.rt(netns)) })
}
func (d *libcniDriver) gcAll(t *testing.T) {
	InNS(t, d.e.HostNS, func() error {
		return d.cni.GCNetworkList(context.Background(), d.list, &libcni.GCArgs{})
	})
}

func buildCnitool(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "cnitool")
	cmd := exec.Command("go", "build", "-o", out, "github.com/containernetworking/cni/cnitool")
	cmd.Dir = testenv.ModuleRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build cnitool (pinned in go.mod as a tool): %v\n%s", err, b)
	}
	return out
}

func TestIntegrationInterop(t *testing.T) {
	cnitool := buildCnitool(t)
	for i, name := range []string{"cnitool", "libcni"} {
		t.Run(name, func(t *testing.T) {
			e := NewEnv(t, "")
			peer := e.NewPeer()
			network := "interop-" + name
			hostPort := 18090 + i
			br := e.BridgeConf("1.1.0", network, testenv.UniqueName("hst-br"), "10.90."+string(rune('0'+i))+".0/24")
			delete(br, "cniVersion")
			delete(br, "name")
			list := Conf{"cniVersion": "1.1.0", "name": network, "plugins": []any{
				map[string]any(br),
				map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}},
			}}
			ports := []map[string]any{{"hostPort": hostPort, "containerPort": 80, "protocol": "tcp"}}
			var d runtimeDriver
			if name == "cnitool" {
				dir := t.TempDir()
				if err := os.WriteFile(filepath.Join(dir, "10-"+network+".conflist"), list.Bytes(t), 0o644); err != nil {
					t.Fatal(err)
				}
				pj, _ := json.Marshal(map[string]any{"portMappings": ports})
				d = &cnitoolDriver{e: e, bin: cnitool, confDir: dir, network: network, ports: string(pj)}
			} else {
				l, err := libcni.NetworkConfFromBytes(list.Bytes(t))
				if err != nil {
					t.Fatal(err)
				}
				d = &libcniDriver{e: e, cni: libcni.NewCNIConfigWithCacheDir([]string{e.BinDir}, t.TempDir(), nil), list: l, ports: ports}
			}

			ns1, ns2 := NewNetns(t, "hst-c"), NewNetns(t, "hst-c")
			Serve(t, ns1, ":80", "served by "+name)
			res := d.add(t, ns1)
			if len(res.IPs) != 1 || !strings.HasPrefix(res.IPs[0].Address.String(), "10.90.") {
				t.Fatalf("%s add result %s", name, res)
			}
			d.check(t, ns1)
			if got, err := Fetch(peer.NS, net.JoinHostPort(peer.HostAddr, itoa(hostPort))); err != nil || got != "served by "+name {
				t.Fatalf("hostPort through %s: %q, %v", name, got, err)
			}
			d.del(t, ns1)
			d.del(t, ns1)
			if l, v, r := e.Leases(network), e.Links("veth"), e.HoistRules(); len(l)+len(v)+r != 0 {
				t.Fatalf("leftovers after %s del: leases %v, veths %v, %d rules", name, l, v, r)
			}

			// A crash: an attachment that is never deleted, then GC with nothing valid.
			d.add(t, ns2)
			if err := nsutil.DeleteNamed(filepath.Base(ns2)); err != nil {
				t.Fatal(err)
			}
			d.gcAll(t)
			if l, r := e.Leases(network), e.HoistRules(); len(l)+r != 0 {
				t.Fatalf("leftovers after %s gc: leases %v, %d rules", name, l, r)
			}
		})
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
