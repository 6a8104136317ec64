package up

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	cidrs := map[string]string{"--pod-cidr": "10.244.0.0/24", "--service-cidr": "10.96.0.0/12"}
	for _, tc := range []struct {
		name    string
		routes  []route
		wantErr string
	}{
		{"no routes", nil, ""},
		{"default route is no conflict", []route{{nil, "eth0"}, {mustNet(t, "0.0.0.0/0"), "eth0"}}, ""},
		{"disjoint", []route{{mustNet(t, "192.168.1.0/24"), "eth0"}}, ""},
		{"route inside pod CIDR", []route{{mustNet(t, "10.244.0.128/25"), "eth1"}},
			"--pod-cidr 10.244.0.0/24 overlaps the existing route 10.244.0.128/25 dev eth1: choose another range with --pod-cidr"},
		{"route containing service CIDR", []route{{mustNet(t, "10.64.0.0/10"), "vpn0"}},
			"--service-cidr 10.96.0.0/12 overlaps the existing route 10.64.0.0/10 dev vpn0"},
		{"own bridge from an earlier run", []route{{mustNet(t, "10.244.0.0/24"), BridgeName}}, ""},
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
	if err := checkRoutes(nil, map[string]string{"--pod-cidr": "10.244.0.0"}); err == nil {
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

func TestCNIConf(t *testing.T) {
	dir := t.TempDir()
	path, err := writeCNIConf(dir, "10.244.3.0/24", "/data/cni/networks")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != ConfFile {
		t.Fatalf("wrote %s", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Name    string
		Plugins []struct {
			Type                           string
			Bridge                         string
			IsGateway, IPMasq, HairpinMode bool
			IPAM                           struct {
				Type    string
				Ranges  [][]struct{ Subnet string }
				DataDir string
			}
		}
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatalf("conflist is not JSON: %v\n%s", err, b)
	}
	if len(conf.Plugins) != 2 || conf.Plugins[1].Type != "portmap" {
		t.Fatalf("want bridge then portmap: %s", b)
	}
	br := conf.Plugins[0]
	if br.Type != "bridge" || br.Bridge != BridgeName || !br.IsGateway || !br.IPMasq || !br.HairpinMode ||
		br.IPAM.Type != "host-local" || br.IPAM.Ranges[0][0].Subnet != "10.244.3.0/24" || br.IPAM.DataDir != "/data/cni/networks" {
		t.Fatalf("bridge config wrong: %s", b)
	}
	if _, err := writeCNIConf(dir, "not-a-cidr", "/x"); err == nil {
		t.Fatal("a bad pod CIDR was written")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("want only %s in the conf dir, got %d entries", ConfFile, len(entries))
	}
}
