// Package iptables renders the proxy's desired state as KUBE-* chains
// (pure: State in, Ruleset out), formats full or partial iptables-restore
// batches from it, and applies them through a command runner.
package iptables

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// Table names.
const (
	Nat    = "nat"
	Filter = "filter"
)

// Chain is a user chain and its rules, each in "-A CHAIN ..." form.
type Chain struct {
	Name  string
	Rules []string
}

// Ruleset is the whole desired content of the proxy's chains in both tables.
type Ruleset struct {
	Tables map[string][]*Chain // by table, chains in output order
}

// Jump is a rule in a built-in chain that enters one of our chains; it is
// ensured with -C/-I rather than restored, since the built-in chains are
// shared with other owners.
type Jump struct {
	Table, Chain string
	Args         []string // the rule after "-A CHAIN"
}

// Jumps are the entry rules from built-in chains, in insertion order.
func Jumps() []Jump {
	newConn := []string{"-m", "conntrack", "--ctstate", "NEW"}
	j := func(table, chain, comment string, pre []string, target string) Jump {
		args := append(append([]string{}, pre...), "-m", "comment", "--comment", comment, "-j", target)
		return Jump{table, chain, args}
	}
	return []Jump{
		j(Nat, "PREROUTING", "kubernetes service portals", nil, "KUBE-SERVICES"),
		j(Nat, "OUTPUT", "kubernetes service portals", nil, "KUBE-SERVICES"),
		j(Nat, "POSTROUTING", "kubernetes postrouting rules", nil, "KUBE-POSTROUTING"),
		j(Filter, "INPUT", "kubernetes externally-visible service portals", newConn, "KUBE-EXTERNAL-SERVICES"),
		j(Filter, "FORWARD", "kubernetes forwarding rules", nil, "KUBE-FORWARD"),
		j(Filter, "FORWARD", "kubernetes service portals", newConn, "KUBE-SERVICES"),
		j(Filter, "FORWARD", "kubernetes externally-visible service portals", newConn, "KUBE-EXTERNAL-SERVICES"),
		j(Filter, "OUTPUT", "kubernetes service portals", newConn, "KUBE-SERVICES"),
	}
}

// Chain returns the named chain of a table, or nil.
func (r *Ruleset) Chain(table, name string) *Chain {
	for _, c := range r.Tables[table] {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// RuleCount is the number of rules per table, for metrics.
func (r *Ruleset) RuleCount(table string) int {
	n := 0
	for _, c := range r.Tables[table] {
		n += len(c.Rules)
	}
	return n
}

// Restore formats an iptables-restore --noflush batch that makes the kernel
// match r. With prev nil it is a full sync: every chain is declared (which
// atomically replaces its content) and every chain in existing that r no
// longer has is deleted. With prev set it is a partial sync: only chains
// whose rules differ from prev are written, and chains prev had but r has
// not are deleted. Nothing is flushed first.
//
// Each table is its own transaction (iptables-nft commits at every
// COMMIT), so a service moving between a REJECT in filter and a DNAT in
// nat would, in either table order, have a moment with neither: a packet
// then leaves unNATed, and its conntrack entry keeps later connections
// from the same source port away from the DNAT (seen as "no route to
// host" minutes later). A partial sync therefore first adds the filter
// rules that are new (keeping the old ones), then writes nat, then drops
// the old filter rules. Both at once are harmless: a DNATed packet no
// longer has the service address the REJECT matches.
func (r *Ruleset) Restore(prev *Ruleset, existing map[string][]string) []byte {
	var b bytes.Buffer
	if prev == nil {
		for _, table := range []string{Filter, Nat} {
			old := map[string][]string{}
			stale := map[string]bool{}
			for _, name := range existing[table] {
				stale[name] = true
			}
			r.restoreTable(&b, table, old, stale, true)
		}
		return b.Bytes()
	}
	filterOld := rulesByChain(prev.Tables[Filter])
	union := map[string][]string{}
	var grow []*Chain
	for _, c := range r.Tables[Filter] {
		o, had := filterOld[c.Name]
		u := unionRules(o, c.Rules)
		if !had || len(u) != len(o) {
			grow = append(grow, &Chain{Name: c.Name, Rules: u})
		}
		union[c.Name] = u
	}
	if len(grow) > 0 {
		writeTable(&b, Filter, grow, nil)
	}
	for name, rules := range filterOld {
		if _, ok := union[name]; !ok {
			union[name] = rules
		}
	}
	r.restoreTable(&b, Nat, rulesByChain(prev.Tables[Nat]), chainNames(prev.Tables[Nat]), false)
	r.restoreTable(&b, Filter, union, chainNames(prev.Tables[Filter]), false)
	return b.Bytes()
}

// restoreTable writes the chains of table whose rules differ from old
// (all of them with all) and deletes the chains in candidates r lacks.
func (r *Ruleset) restoreTable(b *bytes.Buffer, table string, old map[string][]string, candidates map[string]bool, all bool) {
	var write []*Chain
	have := map[string]bool{}
	for _, c := range r.Tables[table] {
		have[c.Name] = true
		if o, ok := old[c.Name]; all || !ok || !equal(o, c.Rules) {
			write = append(write, c)
		}
	}
	stale := map[string]bool{}
	for name := range candidates {
		if !have[name] {
			stale[name] = true
		}
	}
	if len(write) == 0 && len(stale) == 0 {
		return
	}
	writeTable(b, table, write, sortedKeys(stale))
}

// writeTable formats one table's transaction: the chains declared (which
// replaces their content) and filled, then the stale ones flushed and
// deleted.
func writeTable(b *bytes.Buffer, table string, write []*Chain, staleNames []string) {
	fmt.Fprintf(b, "*%s\n", table)
	for _, c := range write {
		fmt.Fprintf(b, ":%s - [0:0]\n", c.Name)
	}
	for _, n := range staleNames {
		fmt.Fprintf(b, ":%s - [0:0]\n", n) // flush it so nothing references it any more
	}
	for _, c := range write {
		for _, rule := range c.Rules {
			b.WriteString(rule)
			b.WriteByte('\n')
		}
	}
	for _, n := range staleNames {
		fmt.Fprintf(b, "-X %s\n", n)
	}
	b.WriteString("COMMIT\n")
}

func rulesByChain(chains []*Chain) map[string][]string {
	m := map[string][]string{}
	for _, c := range chains {
		m[c.Name] = c.Rules
	}
	return m
}

func chainNames(chains []*Chain) map[string]bool {
	m := map[string]bool{}
	for _, c := range chains {
		m[c.Name] = true
	}
	return m
}

// unionRules is old followed by the rules of cur that old lacks.
func unionRules(old, cur []string) []string {
	seen := map[string]bool{}
	for _, r := range old {
		seen[r] = true
	}
	out := append([]string(nil), old...)
	for _, r := range cur {
		if !seen[r] {
			out = append(out, r)
		}
	}
	return out
}

// ChainsInSave lists the KUBE-* user chains an iptables-save dump of one
// table declares.
func ChainsInSave(save []byte) []string {
	var out []string
	for _, line := range strings.Split(string(save), "\n") {
		if strings.HasPrefix(line, ":KUBE-") {
			out = append(out, strings.Fields(line[1:])[0])
		}
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// JumpsText formats Jumps as iptables-restore sections, e.g. for a tracer
// that needs the built-in chains too.
func JumpsText() []byte {
	var b bytes.Buffer
	for _, table := range []string{Nat, Filter} {
		fmt.Fprintf(&b, "*%s\n", table)
		for _, j := range Jumps() {
			if j.Table == table {
				fmt.Fprintf(&b, "-A %s %s\n", j.Chain, strings.Join(quoteArgs(j.Args), " "))
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.Bytes()
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if strings.Contains(a, " ") {
			out[i] = quote(a)
		}
	}
	return out
}
