package cluster

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/hoist-project/hoist/internal/fabric"
)

func TestConfigDefaultsAndErrors(t *testing.T) {
	cfg := Config{DataDir: "rel/dir", Nodes: 2, Hoist: "/opt/hoist/bin/hoist"}
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cfg.DataDir, "/") || cfg.SubnetManager != SubnetManagerKube || cfg.Backend != BackendVXLAN ||
		cfg.ProxyMode != ProxyIPTables || cfg.CNIBinDir != "/opt/hoist/bin/cni" || cfg.BinDir != "/opt/hoist/bin" ||
		cfg.APIPort != DefaultAPIPort || cfg.ContainerdAddress != DefaultContainerdAddress {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Nodes: 2}, "--data-dir is required"},
		{Config{DataDir: "d", Nodes: 0}, "--nodes 0: want 1 to 20"},
		{Config{DataDir: "d", Nodes: 2, Backend: "udp"}, `--backend "udp": use vxlan or host-gw`},
		{Config{DataDir: "d", Nodes: 2, SubnetManager: "consul"}, `--subnet-mgr "consul"`},
		{Config{DataDir: "d", Nodes: 2, ProxyMode: "ipvs"}, `--proxy-mode "ipvs"`},
		{Config{DataDir: "d", Nodes: 2, ClusterCIDR: "10.244.0.0"}, `--cluster-cidr "10.244.0.0" is not an IPv4 CIDR`},
		{Config{DataDir: "d", Nodes: 2, APIPort: 70000}, "--api-port 70000: not a TCP port"},
		{Config{DataDir: "d", Nodes: 2, APIPort: 2379, EtcdClientPort: 2379}, "--api-port and --etcd-port are both 2379"},
	} {
		c := tc.cfg
		c.Hoist = "/bin/hoist"
		err := c.defaults()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
}

// The fabric name must be stable per data dir and valid for fabric.Create
// (it becomes part of interface names).
func TestFabricName(t *testing.T) {
	a, b := FabricName("/var/lib/a"), FabricName("/var/lib/b")
	if a == b || a != FabricName("/var/lib/a") {
		t.Fatalf("names %q %q: want distinct per dir and stable", a, b)
	}
	if len(a) > 10 || strings.Trim(a, "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
		t.Fatalf("name %q is not a valid fabric name", a)
	}
}

func testNode(t *testing.T) NodeState {
	t.Helper()
	fn := fabric.Node{Name: "n1", Netns: "hoist-cx-n1", NetnsPath: "/run/netns/hoist-cx-n1", IP: netip.MustParseAddr("172.31.0.3")}
	return nodeState(layout{"/data"}, "cx", 1, fn)
}

func TestCNIPathsAreTheNodes(t *testing.T) {
	p := testNode(t).cniPaths()
	if p.SubnetFile != "/data/nodes/node2/subnet.env" || p.FlannelData != "/data/nodes/node2/cni/flannel" ||
		p.IPAMData != "/data/nodes/node2/cni/networks" {
		t.Fatalf("flannel plugin does not use node2's own paths: %+v", p)
	}
}

func TestNodeProcesses(t *testing.T) {
	n := testNode(t)
	if n.Name != "node2" || n.ContainerdNamespace != "hoist-cx-node2" || n.CgroupParent != "hoist-cx-node2" {
		t.Fatalf("node plan: %+v", n)
	}
	cfg := Config{DataDir: "/data", Nodes: 2, Hoist: "/bin/hoist"}
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	procs := nodeProcesses(&cfg, n, "/data/images", "")
	byName := map[string][]string{}
	for _, p := range procs {
		byName[p.name] = p.argv
	}
	flanneld := byName["node2-flanneld"]
	for _, want := range [][]string{{"--subnet-mgr", "kube"}, {"--kubeconfig", n.Dirs.Kubeconfig}, {"--public-ip", "172.31.0.3"},
		{"--subnet-file", "/data/nodes/node2/subnet.env"}, {"--cluster-cidr", "10.244.0.0/16"}} {
		if !containsPair(flanneld, want) {
			t.Errorf("flanneld %v lacks %v", flanneld, want)
		}
	}
	kubelet := byName["node2-kubelet"]
	for _, want := range [][]string{{"--containerd-namespace", "hoist-cx-node2"}, {"--root-dir", "/data/nodes/node2/kubelet"},
		{"--cni-conf-dir", "/data/nodes/node2/cni/net.d"}, {"--node-ip", "172.31.0.3"}, {"--node-labels", "kubernetes.io/hostname=node2"}} {
		if !containsPair(kubelet, want) {
			t.Errorf("kubelet %v lacks %v", kubelet, want)
		}
	}
	if p := byName["node2-proxy"]; !containsPair(p, []string{"--mode", "iptables"}) || !containsPair(p, []string{"--node-name", "node2"}) {
		t.Errorf("proxy %v", p)
	}

	cfg.SubnetManager = SubnetManagerEtcd
	procs = nodeProcesses(&cfg, n, "/data/images", "http://172.31.0.1:16381")
	if f := procs[0].argv; !containsPair(f, []string{"--etcd-endpoints", "http://172.31.0.1:16381"}) || slices.Contains(f, "--kubeconfig") {
		t.Errorf("etcd-mode flanneld %v", f)
	}
}

func containsPair(argv, pair []string) bool {
	for i := 0; i+1 < len(argv); i++ {
		if argv[i] == pair[0] && argv[i+1] == pair[1] {
			return true
		}
	}
	return false
}

func TestStateNodeNamesTheNodes(t *testing.T) {
	st := State{DataDir: "/data", Nodes: []NodeState{{Name: "node1"}, {Name: "node2"}}}
	if _, err := st.Node("node2"); err != nil {
		t.Fatal(err)
	}
	_, err := st.Node("node3")
	if err == nil || !strings.Contains(err.Error(), `no node "node3"`) || !strings.Contains(err.Error(), "[node1 node2]") {
		t.Fatalf("got %v", err)
	}
}

func TestDownWithoutClusterIsANoop(t *testing.T) {
	removed, err := Down(t.Context(), t.TempDir())
	if err != nil || len(removed) != 0 {
		t.Fatalf("Down on an empty dir: %v %v", removed, err)
	}
	_, err = Load(t.TempDir())
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of an empty dir: %v, want ErrNotExist", err)
	}
}

func TestExecErrors(t *testing.T) {
	if err := Exec(t.TempDir(), "node1", nil); err == nil || !strings.Contains(err.Error(), "no command given") {
		t.Fatalf("got %v", err)
	}
	if err := Exec(t.TempDir(), "node1", []string{"true"}); err == nil || !strings.Contains(err.Error(), "no cluster under") {
		t.Fatalf("got %v", err)
	}
}
