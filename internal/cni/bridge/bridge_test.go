package bridge

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/hoist-project/hoist/internal/cni/iptables"
)

func TestParseConf(t *testing.T) {
	c, err := ParseConf([]byte(`{"name":"n","isDefaultGateway":true,"ipam":{"type":"host-local"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.BrName != DefaultBridge || !c.IsGateway {
		t.Fatalf("defaults not applied: %+v", c)
	}
	for _, js := range []string{
		`{"name":"n","ipam":{}}`,
		`{"name":"n","bridge":"a-very-long-bridge-name","ipam":{"type":"host-local"}}`,
		`{"name":"n","mtu":10,"ipam":{"type":"host-local"}}`,
	} {
		_, err := ParseConf([]byte(js))
		var e *types.Error
		if !errors.As(err, &e) || e.Code != types.ErrInvalidNetworkConfig {
			t.Fatalf("%s: got %v, want code 7", js, err)
		}
	}
}

func TestMasqChainScopedToContainerAndNetwork(t *testing.T) {
	res := &current.Result{IPs: []*current.IPConfig{
		{Address: net.IPNet{IP: net.ParseIP("10.1.2.3").To4(), Mask: net.CIDRMask(24, 32)}},
		{Address: net.IPNet{IP: net.ParseIP("fd00::3"), Mask: net.CIDRMask(64, 128)}},
	}}
	o := iptables.Owner{Plugin: "bridge", Network: "n", ContainerID: "c", IfName: "eth0"}
	c := masqChain(o, res, iptables.IPv4)
	if got := strings.Join(c.Rules, "|"); got != "-d 10.1.2.0/24 -j ACCEPT|! -d 224.0.0.0/4 -j MASQUERADE" {
		t.Fatalf("rules %s", got)
	}
	if len(c.Jumps) != 1 || c.Jumps[0].Match != "-s 10.1.2.3/32" {
		t.Fatalf("jumps %+v", c.Jumps)
	}
	c6 := masqChain(o, res, iptables.IPv6)
	if got := strings.Join(c6.Rules, "|"); got != "-d fd00::/64 -j ACCEPT|! -d ff00::/8 -j MASQUERADE" || c6.Jumps[0].Match != "-s fd00::3/128" {
		t.Fatalf("IPv6 chain %+v", c6)
	}
}
