package masq

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/hoist-project/hoist/internal/cni/iptables"
)

var network = netip.MustParsePrefix("10.244.0.0/16")

func TestPlanFromEmpty(t *testing.T) {
	got := Plan(network, true, map[string]*iptables.Table{})
	wantNAT := `*nat
:HOIST-FLANNEL-POSTRTG - [0:0]
-A HOIST-FLANNEL-POSTRTG -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "hoist flannel: pod to pod keeps its source" -j RETURN
-A HOIST-FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "hoist flannel: pod to outside" -j MASQUERADE --random-fully
-I POSTROUTING -m comment --comment "hoist flannel: masquerade traffic leaving the cluster" -j HOIST-FLANNEL-POSTRTG
COMMIT
`
	if string(got["nat"]) != wantNAT {
		t.Fatalf("nat batch:\n%s\nwant:\n%s", got["nat"], wantNAT)
	}
	wantFilter := `*filter
:HOIST-FLANNEL-FWD - [0:0]
-A HOIST-FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment "hoist flannel: from pods" -j ACCEPT
-A HOIST-FLANNEL-FWD -d 10.244.0.0/16 -m comment --comment "hoist flannel: to pods" -j ACCEPT
-I FORWARD -m comment --comment "hoist flannel: forward cluster traffic" -j HOIST-FLANNEL-FWD
COMMIT
`
	if string(got["filter"]) != wantFilter {
		t.Fatalf("filter batch:\n%s\nwant:\n%s", got["filter"], wantFilter)
	}
	if strings.Contains(string(got["nat"])+string(got["filter"]), "\n-F ") {
		t.Fatal("batch flushes")
	}
}

// saved turns a batch into what iptables-save would print afterwards.
func saved(batch []byte) *iptables.Table {
	s := strings.ReplaceAll(string(batch), "-I POSTROUTING", "-A POSTROUTING")
	return iptables.ParseSave([]byte(strings.ReplaceAll(s, "-I FORWARD", "-A FORWARD")))
}

func TestPlanConverges(t *testing.T) {
	first := Plan(network, true, nil)
	cur := map[string]*iptables.Table{"nat": saved(first["nat"]), "filter": saved(first["filter"])}
	if again := Plan(network, true, cur); len(again) != 0 {
		t.Fatalf("second plan not empty: %s", again)
	}
	// A rule deleted by hand: the chain is redeclared in full, the jump is not duplicated.
	nat := cur["nat"]
	nat.Rules = nat.Rules[1:]
	repair := Plan(network, true, cur)
	if len(repair) != 1 || !strings.Contains(string(repair["nat"]), "-j RETURN") || strings.Contains(string(repair["nat"]), "POSTROUTING -m") {
		t.Fatalf("repair:\n%s", repair["nat"])
	}
}

func TestPlanWithoutMasquerade(t *testing.T) {
	got := Plan(network, false, nil)
	if _, ok := got["nat"]; ok || got["filter"] == nil {
		t.Fatalf("plan %v", got)
	}
}

// TestRuleOrder traces which rule a packet hits first in the rendered nat chain.
func TestRuleOrder(t *testing.T) {
	rules := desired(network, true)[0].rules
	match := func(src, dst string) string {
		for _, r := range rules {
			f := strings.Fields(r)
			ok := true
			for i := 0; i < len(f)-1; i++ {
				neg := i > 0 && f[i-1] == "!"
				var addr string
				switch f[i] {
				case "-s":
					addr = src
				case "-d":
					addr = dst
				default:
					continue
				}
				in := netip.MustParsePrefix(f[i+1]).Contains(netip.MustParseAddr(addr))
				if in == neg {
					ok = false
				}
			}
			if ok {
				return f[len(f)-1]
			}
		}
		return "none"
	}
	for _, tc := range []struct{ src, dst, want string }{
		{"10.244.1.5", "10.244.2.7", "RETURN"},
		{"10.244.1.5", "172.31.0.9", "--random-fully"},
		{"10.244.1.5", "224.0.0.251", "none"},
		{"172.31.0.2", "8.8.8.8", "none"},
	} {
		if got := match(tc.src, tc.dst); got != tc.want {
			t.Errorf("%s -> %s: %s, want %s", tc.src, tc.dst, got, tc.want)
		}
	}
}

// recorder is an iptables.Runner over canned iptables-save output.
type recorder struct {
	save     map[string]string
	restored []string
}

func (r *recorder) Save(_ iptables.Family, table string) ([]byte, error) {
	return []byte(r.save[table]), nil
}
func (r *recorder) Restore(_ iptables.Family, b []byte) error {
	r.restored = append(r.restored, string(b))
	return nil
}

func TestApplyRemovesMasqueradeWhenSwitchedOff(t *testing.T) {
	first := Plan(network, true, nil)
	r := &recorder{save: map[string]string{
		"nat":    strings.ReplaceAll(string(first["nat"]), "-I POSTROUTING", "-A POSTROUTING"),
		"filter": strings.ReplaceAll(string(first["filter"]), "-I FORWARD", "-A FORWARD"),
	}}
	n, err := Apply(r, network, false)
	if err != nil || n != 1 || len(r.restored) != 1 {
		t.Fatalf("n=%d err=%v batches=%q", n, err, r.restored)
	}
	b := r.restored[0]
	if !strings.Contains(b, "-D POSTROUTING") || !strings.Contains(b, "-X "+PostroutingChain) {
		t.Fatalf("batch does not remove the nat chain:\n%s", b)
	}
	if n, err := Apply(r, network, true); err != nil || n != 0 {
		t.Fatalf("unchanged tables rewritten: n=%d err=%v", n, err)
	}
}

// The forward-accept jump goes behind the service proxy's jumps (which
// reject pod traffic to a Service without endpoints) but ahead of others.
func TestJumpInsertedBehindProxyJumps(t *testing.T) {
	filter := iptables.ParseSave([]byte(`*filter
:FORWARD ACCEPT [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-SERVICES - [0:0]
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A FORWARD -j DROP
-A INPUT -j KUBE-FIREWALL
COMMIT
`))
	got := string(Plan(network, false, map[string]*iptables.Table{"filter": filter})["filter"])
	want := `-I FORWARD 3 -m comment --comment "hoist flannel: forward cluster traffic" -j HOIST-FLANNEL-FWD` + "\n"
	if !strings.Contains(got, want) {
		t.Fatalf("filter batch:\n%s\nwant the jump inserted as:\n%s", got, want)
	}
	if n := leadingProxyJumps(filter.Rules, "POSTROUTING"); n != 0 {
		t.Fatalf("leadingProxyJumps of a chain without rules = %d", n)
	}
}
