package portmap

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/hoist-project/hoist/internal/cni/iptables"
)

// countingRunner fails the test if iptables is touched at all.
type countingRunner struct{ calls int }

func (c *countingRunner) Save(iptables.Family, string) ([]byte, error) { c.calls++; return nil, nil }
func (c *countingRunner) Restore(iptables.Family, []byte) error        { c.calls++; return nil }

func conf(t *testing.T, js string) *Conf {
	t.Helper()
	c, err := ParseConf([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestChainsRender(t *testing.T) {
	c := conf(t, `{"name":"n","runtimeConfig":{"portMappings":[
		{"hostPort":8080,"containerPort":80,"protocol":"TCP"},
		{"hostPort":5353,"containerPort":53,"protocol":"udp","hostIP":"192.0.2.1"},
		{"hostPort":9090,"containerPort":90,"hostIP":"2001:db8::1"}]}}`)
	o := iptables.Owner{Plugin: "portmap", Network: "n", ContainerID: "c1", IfName: "eth0"}
	chains := Chains(o, c, iptables.IPv4, net.ParseIP("10.0.0.5").To4())
	if len(chains) != 2 {
		t.Fatalf("want DNAT and masquerade chains, got %d", len(chains))
	}
	dnat := strings.Join(chains[0].Rules, "\n")
	for _, want := range []string{
		"-p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.5:80",
		"-p udp -d 192.0.2.1 -m udp --dport 5353 -j DNAT --to-destination 10.0.0.5:53",
	} {
		if !strings.Contains(dnat, want) {
			t.Fatalf("DNAT rules lack %q:\n%s", want, dnat)
		}
	}
	if strings.Contains(dnat, "9090") {
		t.Fatal("an IPv6 hostIP must not produce an IPv4 rule")
	}
	if out := chains[0].Jumps[1]; out.From != "OUTPUT" || !strings.Contains(out.Match, "! -d 127.0.0.0/8") {
		t.Fatalf("localhost must be excluded unless allowLocalhost: %+v", out)
	}
	if j := chains[1].Jumps[0]; !j.First || j.Match != "-d 10.0.0.5/32" {
		t.Fatalf("hairpin masquerade jump %+v", j)
	}
	v6 := Chains(o, c, iptables.IPv6, net.ParseIP("fd00::5"))
	if r := strings.Join(v6[0].Rules, "\n"); !strings.Contains(r, "--to-destination [fd00::5]:90") || !strings.Contains(r, "-d 2001:db8::1") {
		t.Fatalf("IPv6 DNAT rules:\n%s", r)
	}
	c.AllowLocalhost = true
	if out := Chains(o, c, iptables.IPv4, net.ParseIP("10.0.0.5").To4())[0].Jumps[1]; strings.Contains(out.Match, "127.0.0.0/8") {
		t.Fatalf("allowLocalhost must let 127.0.0.1 through: %+v", out)
	}
}

func TestNoMappingsTouchesNothing(t *testing.T) {
	r := &countingRunner{}
	p := Plugin{IPTables: r}
	c := conf(t, `{"name":"n"}`)
	args := &skel.CmdArgs{ContainerID: "c1", IfName: "eth0"}
	if err := p.Add(args, c, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Del(args, c, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Check(args, c, nil); err != nil {
		t.Fatal(err)
	}
	if r.calls != 0 {
		t.Fatalf("iptables called %d times for a container without port mappings", r.calls)
	}
}

func TestParseConfRejectsBadMappings(t *testing.T) {
	for _, js := range []string{
		`{"name":"n","runtimeConfig":{"portMappings":[{"hostPort":0,"containerPort":80}]}}`,
		`{"name":"n","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":70000}]}}`,
		`{"name":"n","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"protocol":"icmp"}]}}`,
		`{"name":"n","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"hostIP":"nope"}]}}`,
	} {
		_, err := ParseConf([]byte(js))
		var e *types.Error
		if !errors.As(err, &e) || e.Code != types.ErrInvalidNetworkConfig {
			t.Fatalf("%s: got %v, want code 7", js, err)
		}
	}
}
