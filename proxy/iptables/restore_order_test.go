package iptables_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	ct "github.com/hoist-project/hoist/proxy/changes/changestest"
	"github.com/hoist-project/hoist/proxy/iptables"
	"github.com/hoist-project/hoist/proxy/iptables/trace"
)

// kernel models the proxy's chains as iptables-restore --noflush leaves
// them, one COMMIT (one iptables-nft transaction) at a time.
type kernel map[string]map[string][]string

// apply runs batch, calling check after every COMMIT.
func (k kernel) apply(t *testing.T, batch []byte, check func(step int)) {
	t.Helper()
	table, step := "", 0
	for _, l := range strings.Split(string(batch), "\n") {
		switch {
		case l == "":
		case strings.HasPrefix(l, "*"):
			table = l[1:]
			if k[table] == nil {
				k[table] = map[string][]string{}
			}
		case strings.HasPrefix(l, ":"):
			k[table][strings.Fields(l[1:])[0]] = nil
		case strings.HasPrefix(l, "-A "):
			c := strings.Fields(l)[1]
			k[table][c] = append(k[table][c], l)
		case strings.HasPrefix(l, "-X "):
			delete(k[table], strings.TrimPrefix(l, "-X "))
		case l == "COMMIT":
			step++
			check(step)
		default:
			t.Fatalf("unexpected restore line %q", l)
		}
	}
}

func (k kernel) tracer(t *testing.T) *trace.Tracer {
	t.Helper()
	var b strings.Builder
	for table, chains := range k {
		fmt.Fprintf(&b, "*%s\n", table)
		names := make([]string, 0, len(chains))
		for n := range chains {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(&b, ":%s - [0:0]\n", n)
		}
		for _, n := range names {
			for _, r := range chains[n] {
				b.WriteString(r + "\n")
			}
		}
		b.WriteString("COMMIT\n")
	}
	tc, err := trace.New(append([]byte(b.String()), iptables.JumpsText()...), nodeIP)
	if err != nil {
		t.Fatalf("parse the modelled kernel rules: %v\n%s", err, b.String())
	}
	return tc
}

// Each table is its own transaction, so between two COMMITs of a partial
// sync a service must still be either DNATed or rejected: a packet that
// slips through unNATed leaves a conntrack entry that sends later
// connections from its source port past the DNAT.
func TestPartialSyncNeverLeavesAServiceUnhandled(t *testing.T) {
	f := newFixture(t)
	webService(f)
	webSlices(f, nil, nil)
	none, _ := f.render(cfg)
	webSlices(f, []ct.EP{{IP: "10.244.1.5", Node: "n1"}}, nil)
	one, _ := f.render(cfg)
	for _, tc := range []struct {
		name     string
		from, to *iptables.Ruleset
	}{
		{"endpoints appear", none, one},
		{"endpoints leave", one, none},
	} {
		k := kernel{}
		k.apply(t, tc.from.Restore(nil, nil), func(int) {})
		steps := 0
		k.apply(t, tc.to.Restore(tc.from, nil), func(step int) {
			steps = step
			for _, r := range k.tracer(t).Enumerate(pkt(podSrc, "10.96.0.10", "tcp", 80)) {
				if r.Verdict != "REJECT" && !r.DNAT.IsValid() {
					t.Errorf("%s: after transaction %d a pod's packet to the cluster IP is %s: neither DNATed nor rejected", tc.name, step, r)
				}
			}
		})
		if steps < 2 {
			t.Fatalf("%s: %d transactions, want filter and nat changes", tc.name, steps)
		}
		final := kernel{}
		final.apply(t, tc.to.Restore(nil, nil), func(int) {})
		if got, want := fmt.Sprint(k), fmt.Sprint(final); got != want {
			t.Fatalf("%s: the partial sync leaves\n%s\nwant\n%s", tc.name, got, want)
		}
	}
}
