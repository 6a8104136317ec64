package fabric

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/hoist-project/hoist/internal/fabric/record"
)

func TestChooseSubnet(t *testing.T) {
	p := netip.MustParsePrefix
	used := func(ps ...string) []usedPrefix {
		var u []usedPrefix
		for _, s := range ps {
			u = append(u, usedPrefix{p(s), "route " + s})
		}
		return u
	}
	tests := []struct {
		name      string
		requested netip.Prefix
		nodes     int
		used      []usedPrefix
		want      string // subnet, or the error text it must contain
		wantErr   bool
	}{
		{"first free by default", netip.Prefix{}, 3, nil, "172.31.0.0/24", false},
		{"skips used and partly used", netip.Prefix{}, 3, used("172.31.0.0/24", "172.31.1.128/25", "192.0.2.0/24"), "172.31.2.0/24", false},
		{"pool exhausted", netip.Prefix{}, 3, used("172.16.0.0/12"), "every /24 of 172.31.0.0/16 is in use", true},
		{"too many nodes for a /24", netip.Prefix{}, 254, nil, "do not fit a /24", true},
		{"requested free", p("10.99.0.0/16"), 3, used("10.0.0.0/16"), "10.99.0.0/16", false},
		{"requested is masked", p("10.99.1.7/24"), 3, nil, "10.99.1.0/24", false},
		{"requested overlaps a wider route", p("10.1.2.0/24"), 3, used("10.0.0.0/8"), "overlaps route 10.0.0.0/8", true},
		{"requested overlaps a narrower route", p("10.0.0.0/8"), 3, used("10.1.2.0/24"), "overlaps route 10.1.2.0/24", true},
		{"requested too small", p("10.0.0.0/30"), 2, nil, "no room for 2 nodes", true},
		{"requested just fits", p("10.0.0.0/29"), 5, nil, "10.0.0.0/29", false},
		{"IPv6 refused", p("fd00:1::/64"), 1, nil, "only IPv4", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := chooseSubnet(tt.requested, tt.nodes, tt.used)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("got %s, %v; want an error containing %q", got, err, tt.want)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("got %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestPlanNames(t *testing.T) {
	st := plan(Config{Name: "ab-1", Nodes: 2, MTU: 1400}, netip.MustParsePrefix("10.5.0.0/24"), record.Owner{PID: 7})
	if st.HostIP.String() != "10.5.0.1" || st.HostLink != "hstab-1" || st.FabricNetns != "hoist-ab-1-fabric" || st.MTU != 1400 {
		t.Fatalf("plan: %+v", st)
	}
	want := []Node{
		{Name: "n0", Netns: "hoist-ab-1-n0", NetnsPath: "/var/run/netns/hoist-ab-1-n0", IP: netip.MustParseAddr("10.5.0.2")},
		{Name: "n1", Netns: "hoist-ab-1-n1", NetnsPath: "/var/run/netns/hoist-ab-1-n1", IP: netip.MustParseAddr("10.5.0.3")},
	}
	if len(st.Nodes) != len(want) {
		t.Fatalf("nodes: %+v", st.Nodes)
	}
	for i := range want {
		if st.Nodes[i] != want[i] {
			t.Errorf("node %d: %+v, want %+v", i, st.Nodes[i], want[i])
		}
	}
	// The longest allowed name still gives a valid interface name (15 bytes).
	if l := len(plan(Config{Name: "abcdefghij", Nodes: 1}, netip.MustParsePrefix("10.5.0.0/24"), record.Owner{}).HostLink); l > 15 {
		t.Errorf("root link name of a 10-char fabric is %d bytes", l)
	}
}

func TestCreateRejectsBadConfig(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Name: "", Nodes: 1}, "fabric name"},
		{Config{Name: "Upper", Nodes: 1}, "fabric name"},
		{Config{Name: "elevenchars", Nodes: 1}, "fabric name"},
		{Config{Name: "a/b", Nodes: 1}, "fabric name"},
		{Config{Name: "ok", Nodes: 0}, "at least one node"},
		{Config{Name: "ok", Nodes: 1, MTU: 100}, "MTU 100"},
	}
	for _, tt := range tests {
		_, err := Create(context.Background(), tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Create(%+v): %v; want an error containing %q", tt.cfg, err, tt.want)
		}
	}
}
