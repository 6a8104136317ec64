package subnet

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/hoist-project/hoist/flannel/config"
)

func TestPick(t *testing.T) {
	small := mustConfig(t, `{"Network":"10.1.0.0/16","SubnetMin":"10.1.1.0","SubnetMax":"10.1.3.0"}`)
	wide := mustConfig(t, `{"Network":"10.244.0.0/16"}`)
	p := netip.MustParsePrefix
	set := func(ps ...string) map[netip.Prefix]bool {
		m := map[netip.Prefix]bool{}
		for _, s := range ps {
			m[p(s)] = true
		}
		return m
	}
	for _, tc := range []struct {
		name  string
		cfg   config.Config
		taken map[netip.Prefix]bool
		prev  netip.Prefix
		oneOf []string
		err   string
	}{
		{name: "prev kept", cfg: wide, taken: set("10.244.1.0/24"), prev: p("10.244.7.0/24"), oneOf: []string{"10.244.7.0/24"}},
		{name: "prev taken", cfg: small, taken: set("10.1.1.0/24", "10.1.2.0/24"), prev: p("10.1.2.0/24"), oneOf: []string{"10.1.3.0/24"}},
		{name: "prev wrong length", cfg: small, taken: set("10.1.1.0/24", "10.1.3.0/24"), prev: p("10.1.3.0/25"), oneOf: []string{"10.1.2.0/24"}},
		{name: "prev outside range", cfg: small, taken: set("10.1.1.0/24", "10.1.2.0/24"), prev: p("10.1.9.0/24"), oneOf: []string{"10.1.3.0/24"}},
		{name: "no prev", cfg: small, taken: set(), oneOf: []string{"10.1.1.0/24", "10.1.2.0/24", "10.1.3.0/24"}},
		{name: "full", cfg: small, taken: set("10.1.1.0/24", "10.1.2.0/24", "10.1.3.0/24"), err: "no free /24 subnet left"},
		{name: "first subnet skipped by default", cfg: mustConfig(t, `{"Network":"10.9.0.0/23"}`), taken: set(), oneOf: []string{"10.9.1.0/24"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := uint64(0); seed < 20; seed++ {
				got, err := Pick(tc.cfg, tc.taken, tc.prev, rand.New(rand.NewPCG(seed, 1)))
				if tc.err != "" {
					if err == nil || !strings.Contains(err.Error(), tc.err) {
						t.Fatalf("err = %v, want %q", err, tc.err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				ok := false
				for _, s := range tc.oneOf {
					ok = ok || got == p(s)
				}
				if !ok {
					t.Fatalf("seed %d: got %s, want one of %v", seed, got, tc.oneOf)
				}
			}
		})
	}
}

func TestKeyName(t *testing.T) {
	p := netip.MustParsePrefix("10.244.3.0/24")
	if KeyName(p) != "10.244.3.0-24" {
		t.Fatal(KeyName(p))
	}
	if got, err := ParseKeyName("10.244.3.0-24"); err != nil || got != p {
		t.Fatal(got, err)
	}
	for _, bad := range []string{"10.244.3.0", "10.244.3.1-24", "x-24"} {
		if _, err := ParseKeyName(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}

func TestBatchApply(t *testing.T) {
	a, b := Lease{Subnet: netip.MustParsePrefix("10.0.1.0/24")}, Lease{Subnet: netip.MustParsePrefix("10.0.2.0/24")}
	known := map[netip.Prefix]Lease{}
	Batch{Snapshot: true, Events: []Event{{Added, a}, {Added, b}}}.Apply(known)
	Batch{Events: []Event{{Removed, a}}}.Apply(known)
	if len(known) != 1 || known[b.Subnet].Subnet != b.Subnet {
		t.Fatalf("known %v", known)
	}
	Batch{Snapshot: true, Events: []Event{{Added, a}}}.Apply(known)
	if len(known) != 1 || known[a.Subnet].Subnet != a.Subnet {
		t.Fatalf("after snapshot %v", known)
	}
}

func mustConfig(t *testing.T, s string) config.Config {
	t.Helper()
	c, err := config.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
