package config

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Config
		err      string
	}{
		{name: "defaults", in: `{"Network":"10.244.0.0/16"}`, want: Config{
			Network: netip.MustParsePrefix("10.244.0.0/16"), SubnetLen: 24,
			SubnetMin: netip.MustParseAddr("10.244.1.0"), SubnetMax: netip.MustParseAddr("10.244.255.0"),
			Backend: Backend{Type: VXLAN, VNI: 1, Port: 8472}}},
		{name: "upstream vxlan with unknown keys", in: `{"Network":"10.5.0.0/16","EnableIPv6":false,"SubnetLen":26,"SubnetMin":"10.5.0.64","Backend":{"Type":"vxlan","VNI":4,"DirectRouting":true}}`, want: Config{
			Network: netip.MustParsePrefix("10.5.0.0/16"), SubnetLen: 26,
			SubnetMin: netip.MustParseAddr("10.5.0.64"), SubnetMax: netip.MustParseAddr("10.5.255.192"),
			Backend: Backend{Type: VXLAN, VNI: 4, Port: 8472, DirectRouting: true}}},
		{name: "host-gw", in: `{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"},"MTU":1400}`, want: Config{
			Network: netip.MustParsePrefix("10.244.0.0/16"), SubnetLen: 24,
			SubnetMin: netip.MustParseAddr("10.244.1.0"), SubnetMax: netip.MustParseAddr("10.244.255.0"),
			Backend: Backend{Type: HostGW}, MTU: 1400}},
		{name: "unmasked network", in: `{"Network":"10.244.3.4/16"}`, want: Config{
			Network: netip.MustParsePrefix("10.244.0.0/16"), SubnetLen: 24,
			SubnetMin: netip.MustParseAddr("10.244.1.0"), SubnetMax: netip.MustParseAddr("10.244.255.0"),
			Backend: Backend{Type: VXLAN, VNI: 1, Port: 8472}}},
		{name: "bad json", in: `{`, err: "invalid JSON"},
		{name: "no network", in: `{}`, err: `"Network" is missing`},
		{name: "ipv6", in: `{"Network":"fd00::/64"}`, err: "not an IPv4 CIDR"},
		{name: "subnetlen too short", in: `{"Network":"10.244.0.0/16","SubnetLen":16}`, err: "SubnetLen 16 must be longer"},
		{name: "min outside", in: `{"Network":"10.244.0.0/16","SubnetMin":"10.1.0.0"}`, err: "outside Network"},
		{name: "min unaligned", in: `{"Network":"10.244.0.0/16","SubnetMin":"10.244.1.5"}`, err: "not the start of a /24"},
		{name: "min after max", in: `{"Network":"10.244.0.0/16","SubnetMin":"10.244.9.0","SubnetMax":"10.244.2.0"}`, err: "after SubnetMax"},
		{name: "unknown backend", in: `{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}`, err: `"udp" is not supported`},
		{name: "vni range", in: `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":16777216}}`, err: "VNI 16777216 out of range"},
		{name: "hostgw vxlan option", in: `{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw","VNI":3}}`, err: "are vxlan options"},
		{name: "mtu", in: `{"Network":"10.244.0.0/16","MTU":100}`, err: "MTU 100 out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
			again, err := Parse(got.Marshal())
			if err != nil || again != got {
				t.Fatalf("round trip: %+v, %v", again, err)
			}
		})
	}
}

func TestFromOptions(t *testing.T) {
	c, err := FromOptions(Options{Network: "10.50.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Network.String() != "10.50.0.0/16" || c.Backend.Type != VXLAN || c.Backend.VNI != DefaultVNI || c.Backend.Port != DefaultPort {
		t.Fatalf("defaults not applied: %+v", c)
	}
	c, err = FromOptions(Options{Network: "10.50.0.0/16", BackendType: "host-gw", MTU: 1400})
	if err != nil || c.Backend.Type != HostGW || c.MTU != 1400 {
		t.Fatalf("host-gw: %+v, %v", c, err)
	}
	if _, err := FromOptions(Options{Network: "10.50.0.0/16", BackendType: "host-gw", VNI: 4}); err == nil || !strings.Contains(err.Error(), "vxlan options") {
		t.Fatalf("VNI with host-gw: %v", err)
	}
	if _, err := FromOptions(Options{Network: "nope"}); err == nil || !strings.Contains(err.Error(), "not an IPv4 CIDR") {
		t.Fatalf("bad network: %v", err)
	}
}
