// Package masq owns flanneld's iptables rules: masquerade for traffic that
// leaves the cluster CIDR (never pod to pod) and forward-accept for the
// cluster CIDR. The rules are rendered as text by pure functions and applied
// in one `iptables-restore --noflush` batch per table that redeclares the
// hoist-owned chain — an atomic replace, never flush-then-add — and adds the
// jump from the built-in chain only when it is missing. Nothing is written
// when the chains already hold exactly the desired rules.
package masq

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/hoist-project/hoist/internal/cni/iptables"
)

// Owned chain names (at most 28 characters).
const (
	PostroutingChain = "HOIST-FLANNEL-POSTRTG"
	ForwardChain     = "HOIST-FLANNEL-FWD"
)

// chain is one owned chain and the jump that enters it.
type chain struct {
	table, name string
	from        string   // built-in chain holding the jump
	jump        string   // the jump rule, "-A <from> ... -j <name>", as iptables-save prints it
	rules       []string // "-A <name> ..." as iptables-save prints them
}

// desired renders the owned chains for network. masquerade false leaves the
// nat chain out (forward-accept is always wanted).
func desired(network netip.Prefix, masquerade bool) []chain {
	n := network.String()
	cmt := func(s string) string { return `-m comment --comment "hoist flannel: ` + s + `"` }
	fwd := chain{
		table: "filter", name: ForwardChain, from: "FORWARD",
		jump: "-A FORWARD " + cmt("forward cluster traffic") + " -j " + ForwardChain,
		rules: []string{
			"-A " + ForwardChain + " -s " + n + " " + cmt("from pods") + " -j ACCEPT",
			"-A " + ForwardChain + " -d " + n + " " + cmt("to pods") + " -j ACCEPT",
		},
	}
	if !masquerade {
		return []chain{fwd}
	}
	nat := chain{
		table: "nat", name: PostroutingChain, from: "POSTROUTING",
		jump: "-A POSTROUTING " + cmt("masquerade traffic leaving the cluster") + " -j " + PostroutingChain,
		rules: []string{
			"-A " + PostroutingChain + " -s " + n + " -d " + n + " " + cmt("pod to pod keeps its source") + " -j RETURN",
			"-A " + PostroutingChain + " -s " + n + " ! -d 224.0.0.0/4 " + cmt("pod to outside") + " -j MASQUERADE --random-fully",
		},
	}
	return []chain{nat, fwd}
}

// Plan returns, per table, the restore batch that brings the tables (as
// parsed from iptables-save) to the desired rules; tables already right are
// absent from the result.
func Plan(network netip.Prefix, masquerade bool, current map[string]*iptables.Table) map[string][]byte {
	out := map[string][]byte{}
	for _, c := range desired(network, masquerade) {
		cur := current[c.table]
		if cur == nil {
			cur = &iptables.Table{Chains: map[string]bool{}}
		}
		var have []string
		for _, r := range cur.Rules {
			if strings.HasPrefix(r, "-A "+c.name+" ") {
				have = append(have, r)
			}
		}
		jumpOK := slices.Contains(cur.Rules, c.jump)
		if cur.Chains[c.name] && slices.Equal(have, c.rules) && jumpOK {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "*%s\n:%s - [0:0]\n", c.table, c.name) // redeclaring replaces the chain's rules in this transaction
		for _, r := range c.rules {
			b.WriteString(r + "\n")
		}
		if !jumpOK {
			// Insert ahead of rules (a DROP policy helper, another MASQUERADE)
			// that would end the traversal, but behind the service proxy's
			// jumps, as upstream's appended FLANNEL-FWD is: accepting pod
			// traffic first would skip the REJECT of a Service without
			// endpoints, and a SYN let out unNATed leaves a conntrack entry
			// that later steers a connection from the same port past the DNAT.
			insert := "-I " + c.from + " "
			if n := leadingProxyJumps(cur.Rules, c.from); n > 0 {
				insert += fmt.Sprint(n+1) + " "
			}
			b.WriteString(insert + strings.TrimPrefix(c.jump, "-A "+c.from+" ") + "\n")
		}
		b.WriteString("COMMIT\n")
		out[c.table] = []byte(b.String())
	}
	return out
}

// leadingProxyJumps counts the rules at the head of the built-in chain that
// jump to the service proxy's KUBE-* chains.
func leadingProxyJumps(rules []string, builtin string) int {
	n := 0
	for _, r := range rules {
		if !strings.HasPrefix(r, "-A "+builtin+" ") {
			continue
		}
		if !strings.Contains(r, " -j KUBE-") {
			break
		}
		n++
	}
	return n
}

// Apply reads the current tables and applies Plan; it reports how many
// tables had to be written.
func Apply(r iptables.Runner, network netip.Prefix, masquerade bool) (int, error) {
	current := map[string]*iptables.Table{}
	for _, table := range []string{"nat", "filter"} {
		data, err := r.Save(iptables.IPv4, table)
		if err != nil {
			return 0, err
		}
		current[table] = iptables.ParseSave(data)
	}
	batches := Plan(network, masquerade, current)
	if !masquerade && current["nat"].Chains[PostroutingChain] {
		// Masquerading was switched off: remove the chain an earlier run made.
		b := iptables.NewBatch("nat")
		b.Remove(current["nat"], PostroutingChain)
		batches["nat"] = b.Bytes()
	}
	for _, table := range []string{"nat", "filter"} {
		if b, ok := batches[table]; ok {
			if err := r.Restore(iptables.IPv4, b); err != nil {
				return 0, err
			}
		}
	}
	return len(batches), nil
}
