package up

import (
	"net"
	"os"
	"strings"
	"testing"

	"github.com/hoist-project/hoist/internal/cni/nodeconf"
)

func mustNet(t *testing.T, s string) *net.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCheckRoutes(t *testing.T) {
	cidrs := map[string]string{"--cluster-cidr": "10.244.0.0/16", "--service-cidr": "10.96.0.0/12"}
	for _, tc := range []struct {
		name    string
		routes  []route
		wantErr string
	}{
		{"no routes", nil, ""},
		{"default route is no conflict", []route{{nil, "eth0"}, {mustNet(t, "0.0.0.0/0"), "eth0"}}, ""},
		{"disjoint", []route{{mustNet(t, "192.168.1.0/24"), "eth0"}}, ""},
		{"route inside cluster CIDR", []route{{mustNet(t, "10.244.0.128/25"), "eth1"}},
			"--cluster-cidr 10.244.0.0/16 overlaps the existing route 10.244.0.128/25 dev eth1: choose another range with --cluster-cidr"},
		{"route containing service CIDR", []route{{mustNet(t, "10.64.0.0/10"), "vpn0"}},
			"--service-cidr 10.96.0.0/12 overlaps the existing route 10.64.0.0/10 dev vpn0"},
		{"own bridge from an earlier run", []route{{mustNet(t, "10.244.0.0/24"), nodeconf.BridgeName}}, ""},
		{"own VXLAN device from an earlier run", []route{{mustNet(t, "10.244.9.0/24"), "flannel.1"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkRoutes(tc.routes, cidrs)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
	if err := checkRoutes(nil, map[string]string{"--cluster-cidr": "10.244.0.0"}); err == nil {
		t.Fatal("a bad CIDR passed")
	}
}

func TestCheckPortsNamesHolder(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	err = checkPorts(map[string]string{"API": ln.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "API port "+port+" is already in use") {
		t.Fatalf("error %v, want the API port named", err)
	}
	// /proc names the holder: this test process.
	comm, _ := os.ReadFile("/proc/self/comm")
	if want := strings.TrimSpace(string(comm)); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v does not name the holder %q", err, want)
	}
	ln.Close()
	if err := checkPorts(map[string]string{"API": ln.Addr().String()}); err != nil {
		t.Fatalf("free port refused: %v", err)
	}
}

func TestNetworkConfig(t *testing.T) {
	c := Config{ClusterCIDR: "10.50.0.0/16", Backend: "vxlan"}
	nc, err := c.networkConfig()
	if err != nil || nc.Network.String() != "10.50.0.0/16" || nc.Backend.Type != "vxlan" || nc.Backend.VNI != 1 {
		t.Fatalf("network config %+v, %v", nc, err)
	}
	c.Backend = "udp"
	if _, err := c.networkConfig(); err == nil || !strings.Contains(err.Error(), `--cluster-cidr/--backend: network config: Backend.Type "udp" is not supported`) {
		t.Fatalf("bad backend: %v", err)
	}
	if err := checkCNIPlugins(t.TempDir()); err == nil || !strings.Contains(err.Error(), "CNI plugins flannel, host-local, portmap, loopback missing") {
		t.Fatalf("empty CNI dir: %v", err)
	}
}
