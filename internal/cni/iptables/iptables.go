// Package iptables applies hoist-owned chains with one iptables-restore
// batch per change (never per-rule execs) and finds them again from
// iptables-save, so plugins can delete and garbage-collect what they made.
//
// An owned chain has a hoist prefix and is entered by jump rules from
// built-in chains; every jump carries the comment "hoist <tag>" that names
// its owner, which is how GC learns whom a chain belonged to.
package iptables

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"

	current "github.com/containernetworking/cni/pkg/types/100"
)

// Family selects iptables or ip6tables.
type Family int

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) cmd(name string) string {
	if f == IPv6 {
		return "ip6" + name
	}
	return "ip" + name
}

// Runner executes iptables-save / iptables-restore; tests may replace it.
type Runner interface {
	Save(f Family, table string) ([]byte, error)
	Restore(f Family, batch []byte) error
}

// Exec is the Runner over the system binaries.
type Exec struct{}

// Save returns `iptables-save -t table`.
func (Exec) Save(f Family, table string) ([]byte, error) {
	out, err := exec.Command(f.cmd("tables-save"), "-t", table).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return nil, fmt.Errorf("%s -t %s: %v: %s", f.cmd("tables-save"), table, err, bytes.TrimSpace(ee.Stderr))
		}
		return nil, fmt.Errorf("%s: %w (install the iptables package)", f.cmd("tables-save"), err)
	}
	return out, nil
}

// Restore applies batch atomically without flushing other chains; -w waits for the xtables lock.
func (Exec) Restore(f Family, batch []byte) error {
	cmd := exec.Command(f.cmd("tables-restore"), "--noflush", "-w", "5")
	cmd.Stdin = bytes.NewReader(batch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s\nbatch:\n%s", f.cmd("tables-restore"), err, bytes.TrimSpace(out), batch)
	}
	return nil
}

// Chain is one owned chain: its rules and the jumps into it.
type Chain struct {
	Name  string
	Rules []string // rule specs without "-A <chain>"
	// Jumps maps a built-in chain to the match part of the jump rule
	// (without -j and the comment), e.g. "POSTROUTING" -> "-s 10.0.0.2/32".
	Jumps []Jump
}

// Jump is one rule in a built-in chain leading into an owned chain.
type Jump struct {
	From, Match string
	// First puts the jump at the head of From, ahead of rules (such as a
	// masquerade chain's ACCEPT) that would end the traversal earlier.
	First bool
}

// Comment is the owner comment put on every jump.
func Comment(tag string) string { return "hoist " + tag }

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `'`) + `"` }

// Table is the parsed iptables-save output of one table.
type Table struct {
	Chains map[string]bool
	// Rules are the "-A ..." lines in order.
	Rules []string
}

// ParseSave parses iptables-save output for one table.
func ParseSave(data []byte) *Table {
	t := &Table{Chains: map[string]bool{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, ":"):
			if f := strings.Fields(line[1:]); len(f) > 0 {
				t.Chains[f[0]] = true
			}
		case strings.HasPrefix(line, "-A "):
			t.Rules = append(t.Rules, line)
		}
	}
	return t
}

// JumpsTo returns the "-A ..." rules that jump to chain.
func (t *Table) JumpsTo(chain string) []string {
	var out []string
	for _, r := range t.Rules {
		if strings.HasSuffix(r, " -j "+chain) || strings.Contains(r, " -j "+chain+" ") {
			out = append(out, r)
		}
	}
	return out
}

// Owners maps each owned chain with the prefix to the tag in its jumps' comment.
func (t *Table) Owners(prefix string) map[string]string {
	out := map[string]string{}
	for c := range t.Chains {
		if strings.HasPrefix(c, prefix) {
			out[c] = ""
		}
	}
	for _, r := range t.Rules {
		i := strings.Index(r, " -j "+prefix)
		if i < 0 {
			continue
		}
		target := strings.Fields(r[i+4:])[0]
		if tag, ok := commentTag(r); ok {
			out[target] = tag
		}
	}
	return out
}

func commentTag(rule string) (string, bool) {
	const key = `--comment "hoist `
	i := strings.Index(rule, key)
	if i < 0 {
		return "", false
	}
	rest := rule[i+len(key):]
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return "", false
	}
	return rest[:j], true
}

// Batch accumulates one iptables-restore input for one table.
type Batch struct {
	table string
	buf   bytes.Buffer
	n     int
}

// NewBatch starts a batch for table.
func NewBatch(table string) *Batch { return &Batch{table: table} }

// Empty reports whether the batch changes nothing.
func (b *Batch) Empty() bool { return b.n == 0 }

// Bytes is the complete restore input.
func (b *Batch) Bytes() []byte {
	return []byte("*" + b.table + "\n" + b.buf.String() + "COMMIT\n")
}

func (b *Batch) line(s string) { b.buf.WriteString(s + "\n"); b.n++ }

// Ensure (re)writes an owned chain in one atomic transaction: declaring it
// flushes any old content, and old jumps into it are replaced by the new ones.
func (b *Batch) Ensure(cur *Table, c Chain, tag string) {
	for _, r := range cur.JumpsTo(c.Name) {
		b.line("-D" + strings.TrimPrefix(r, "-A"))
	}
	b.line(":" + c.Name + " - [0:0]")
	for _, r := range c.Rules {
		b.line("-A " + c.Name + " " + r)
	}
	for _, j := range c.Jumps {
		op := "-A "
		if j.First {
			op = "-I "
		}
		b.line(op + jumpSpec(j, c.Name, tag))
	}
}

func jumpSpec(j Jump, chain, tag string) string {
	return j.From + " " + j.Match + " -m comment --comment " + quote(Comment(tag)) + " -j " + chain
}

// removeKnown deletes a chain whose jumps are known exactly; the batch fails
// as a whole if any of them is missing.
func (b *Batch) removeKnown(c Chain, tag string) {
	for _, j := range c.Jumps {
		b.line("-D " + jumpSpec(j, c.Name, tag))
	}
	b.line(":" + c.Name + " - [0:0]")
	b.line("-X " + c.Name)
}

// Remove deletes an owned chain and every jump into it, if they exist.
func (b *Batch) Remove(cur *Table, chain string) {
	for _, r := range cur.JumpsTo(chain) {
		b.line("-D" + strings.TrimPrefix(r, "-A"))
	}
	if cur.Chains[chain] {
		b.line(":" + chain + " - [0:0]") // flush, so -X finds it empty
		b.line("-X " + chain)
	}
}

// Owner identifies the container attachment an owned chain belongs to.
type Owner struct{ Plugin, Network, ContainerID, IfName string }

// Tag renders the owner for a jump comment.
func (o Owner) Tag() string {
	return fmt.Sprintf("%s net=%s id=%s if=%s", o.Plugin, o.Network, o.ContainerID, o.IfName)
}

// ChainName is a stable per-owner chain name: prefix + 16 hex digits of a hash
// (iptables allows 28 characters).
func (o Owner) ChainName(prefix string) string {
	sum := sha256.Sum256([]byte(o.Plugin + "\x00" + o.Network + "\x00" + o.ContainerID + "\x00" + o.IfName))
	return prefix + hex.EncodeToString(sum[:8])
}

// ParseOwner reads a tag written by Owner.Tag.
func ParseOwner(tag string) (Owner, bool) {
	f := strings.Fields(tag)
	if len(f) != 4 {
		return Owner{}, false
	}
	o := Owner{Plugin: f[0]}
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "net":
			o.Network = v
		case "id":
			o.ContainerID = v
		case "if":
			o.IfName = v
		}
	}
	return o, o.Network != "" && o.ContainerID != ""
}

// Families lists the IP families of res's addresses; with no result (a DEL
// without prevResult) it is both, since either may hold rules.
func Families(res *current.Result) []Family {
	if res == nil {
		return []Family{IPv4, IPv6}
	}
	var v4, v6 bool
	for _, ipc := range res.IPs {
		if ipc.Address.IP.To4() != nil {
			v4 = true
		} else {
			v6 = true
		}
	}
	var out []Family
	if v4 {
		out = append(out, IPv4)
	}
	if v6 {
		out = append(out, IPv6)
	}
	return out
}
