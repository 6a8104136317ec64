// Package trace follows a simulated packet through iptables rules given in
// iptables-restore/iptables-save text, so rendering can be tested without a
// kernel: nat PREROUTING or OUTPUT, the filter table, nat POSTROUTING. It
// understands the matches and targets the proxy renders; statistic rules
// are chosen by the caller or enumerated with their probabilities, and
// `-m recent` state persists between traces like the kernel's.
package trace

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Packet is the first packet of a new connection.
type Packet struct {
	Src, Dst netip.Addr
	Proto    string // "tcp", "udp", "sctp"
	DPort    uint16
	Local    bool // sent by a process on the node (OUTPUT) rather than arriving (PREROUTING)
}

// Result is where a packet ended.
type Result struct {
	Verdict    string         // "DNAT", "REJECT", "DROP" or "ACCEPT" (passed untouched)
	DNAT       netip.AddrPort // valid when Verdict is "DNAT"
	Masquerade bool           // KUBE-POSTROUTING masqueraded it
	Mark       uint32
	Chains     []string // user chains entered, in order
	Prob       float64  // probability of this path (1 for Trace)
}

func (r Result) String() string {
	s := r.Verdict
	if r.DNAT.IsValid() {
		s += " " + r.DNAT.String()
	}
	if r.Masquerade {
		s += " masq"
	}
	return s
}

// Tracer holds parsed rules and the recent-module state.
type Tracer struct {
	tables map[string]map[string][]rule
	local  map[netip.Addr]bool
	recent map[string]map[netip.Addr]bool
}

// New parses rules (any number of "*table ... COMMIT" sections; sections
// of the same table merge) and takes the node's local addresses for
// `-m addrtype --{src,dst}-type LOCAL` (127.0.0.0/8 is always local).
func New(rules []byte, local ...netip.Addr) (*Tracer, error) {
	t := &Tracer{tables: map[string]map[string][]rule{}, local: map[netip.Addr]bool{}, recent: map[string]map[netip.Addr]bool{}}
	for _, a := range local {
		t.local[a] = true
	}
	table := ""
	for n, line := range strings.Split(string(rules), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || line == "COMMIT" || strings.HasPrefix(line, "-X "):
		case strings.HasPrefix(line, ":") && table != "":
			name := strings.Fields(line[1:])[0]
			if _, ok := t.tables[table][name]; !ok {
				t.tables[table][name] = nil // declared, possibly empty
			}
		case strings.HasPrefix(line, "*"):
			table = line[1:]
			if t.tables[table] == nil {
				t.tables[table] = map[string][]rule{}
			}
		case strings.HasPrefix(line, "-A "):
			if table == "" {
				return nil, fmt.Errorf("line %d: rule outside a table: %s", n+1, line)
			}
			r, err := parseRule(line)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n+1, err)
			}
			t.tables[table][r.chain] = append(t.tables[table][r.chain], r)
		default:
			return nil, fmt.Errorf("line %d: unsupported: %s", n+1, line)
		}
	}
	return t, nil
}

// Chooser decides a statistic rule with the given probability: true matches.
type Chooser func(probability float64) bool

// First always takes the first statistic branch it meets.
func First(float64) bool { return true }

// Trace follows p once, deciding statistic rules with choose, and records
// `-m recent --set` like the kernel so a later trace sees the affinity.
func (t *Tracer) Trace(p Packet, choose Chooser) Result {
	run := &run{t: t, pkt: p, choose: choose, recent: t.recent, prob: 1}
	return run.all()
}

// Enumerate follows p down every statistic branch and returns one Result
// per distinct path with its probability. It does not change recent state.
func (t *Tracer) Enumerate(p Packet) []Result {
	var out []Result
	queue := [][]bool{nil}
	for len(queue) > 0 {
		script := queue[0]
		queue = queue[1:]
		i, branched := 0, false
		choose := func(prob float64) bool {
			if i < len(script) {
				i++
				return script[i-1]
			}
			branched = true
			panic(errBranch{})
		}
		res, ok := t.tryRun(p, choose)
		if !ok || branched {
			queue = append(queue, append(append([]bool{}, script...), true), append(append([]bool{}, script...), false))
			continue
		}
		out = append(out, res)
	}
	return out
}

type errBranch struct{}

func (t *Tracer) tryRun(p Packet, choose Chooser) (res Result, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, isBranch := r.(errBranch); !isBranch {
				panic(r)
			}
			ok = false
		}
	}()
	copied := map[string]map[netip.Addr]bool{}
	for k, v := range t.recent {
		copied[k] = map[netip.Addr]bool{}
		for a := range v {
			copied[k][a] = true
		}
	}
	r := &run{t: t, pkt: p, recent: copied, prob: 1}
	r.choose = func(prob float64) bool {
		m := choose(prob)
		if m {
			r.prob *= prob
		} else {
			r.prob *= 1 - prob
		}
		return m
	}
	return r.all(), true
}

type run struct {
	t      *Tracer
	pkt    Packet
	choose Chooser
	recent map[string]map[netip.Addr]bool
	mark   uint32
	dnat   netip.AddrPort
	masq   bool
	chains []string
	prob   float64
}

func (r *run) all() Result {
	res := Result{Verdict: "ACCEPT"}
	first := "PREROUTING"
	if r.pkt.Local {
		first = "OUTPUT"
	}
	if v := r.eval("nat", first, 0); v == "DNAT" {
		res.Verdict = "DNAT"
	}
	filterChain := "FORWARD"
	switch {
	case r.pkt.Local:
		filterChain = "OUTPUT"
	case r.isLocal(r.pkt.Dst):
		filterChain = "INPUT"
	}
	if v := r.eval("filter", filterChain, 0); v == "DROP" || v == "REJECT" {
		res.Verdict = v
	} else {
		r.eval("nat", "POSTROUTING", 0)
	}
	res.DNAT, res.Masquerade, res.Mark, res.Chains, res.Prob = r.dnat, r.masq, r.mark, r.chains, r.prob
	if res.Verdict != "DNAT" {
		res.DNAT = netip.AddrPort{}
	}
	return res
}

func (r *run) isLocal(a netip.Addr) bool {
	return r.t.local[a] || netip.MustParsePrefix("127.0.0.0/8").Contains(a)
}

// eval runs a chain; it returns a terminal verdict or "" to continue in
// the caller.
func (r *run) eval(table, chain string, depth int) string {
	if depth > 32 {
		panic(fmt.Sprintf("trace: chain loop at %s/%s", table, chain))
	}
	if depth > 0 {
		r.chains = append(r.chains, chain)
	}
	for _, rl := range r.t.tables[table][chain] {
		if !r.matches(rl) {
			continue
		}
		switch rl.target {
		case "RETURN":
			return ""
		case "MARK":
			r.mark = r.mark&^rl.markMask ^ rl.markValue
		case "DNAT":
			r.dnat = rl.toDest
			r.pkt.Dst, r.pkt.DPort = rl.toDest.Addr(), rl.toDest.Port()
			return "DNAT"
		case "MASQUERADE":
			r.masq = true
			return "ACCEPT"
		case "ACCEPT", "DROP", "REJECT":
			return rl.target
		default:
			if _, ok := r.t.tables[table][rl.target]; !ok {
				panic(fmt.Sprintf("trace: %s: jump to unknown chain %s", table, rl.target))
			}
			if v := r.eval(table, rl.target, depth+1); v != "" {
				return v
			}
		}
	}
	return ""
}

func (r *run) matches(rl rule) bool {
	p := r.pkt
	for _, c := range rl.conds {
		if c.test(r, p) == c.negate {
			return false
		}
	}
	if rl.recentSet != "" {
		if r.recent[rl.recentSet] == nil {
			r.recent[rl.recentSet] = map[netip.Addr]bool{}
		}
		r.recent[rl.recentSet][p.Src] = true
	}
	return true
}

// cond is one match of a rule; statistic conditions consult the chooser
// only when every earlier condition matched, like the kernel.
type cond struct {
	negate bool
	test   func(r *run, p Packet) bool
}

type rule struct {
	chain     string
	conds     []cond
	target    string
	markValue uint32 // MARK as --set-xmark value/mask: mark = (mark &^ mask) ^ value
	markMask  uint32
	toDest    netip.AddrPort
	recentSet string
}

func parseRule(line string) (rule, error) {
	toks, err := tokenize(line)
	if err != nil {
		return rule{}, err
	}
	r := rule{chain: toks[1]}
	neg := false
	next := func(i *int) string {
		*i++
		if *i >= len(toks) {
			return ""
		}
		return toks[*i]
	}
	add := func(f func(r *run, p Packet) bool) { r.conds = append(r.conds, cond{neg, f}); neg = false }
	var recentName string
	for i := 2; i < len(toks); i++ {
		switch tok := toks[i]; tok {
		case "!":
			neg = true
		case "-s", "-d":
			pfx, err := parsePrefix(next(&i))
			if err != nil {
				return r, err
			}
			src := tok == "-s"
			add(func(_ *run, p Packet) bool {
				if src {
					return pfx.Contains(p.Src)
				}
				return pfx.Contains(p.Dst)
			})
		case "-p":
			proto := next(&i)
			add(func(_ *run, p Packet) bool { return p.Proto == proto })
		case "--dport":
			port, err := strconv.Atoi(next(&i))
			if err != nil {
				return r, fmt.Errorf("bad --dport in %q", line)
			}
			add(func(_ *run, p Packet) bool { return int(p.DPort) == port })
		case "--src-type", "--dst-type":
			if next(&i) != "LOCAL" {
				return r, fmt.Errorf("only addrtype LOCAL is supported: %q", line)
			}
			src := tok == "--src-type"
			add(func(r *run, p Packet) bool {
				if src {
					return r.isLocal(p.Src)
				}
				return r.isLocal(p.Dst)
			})
		case "--mark":
			val, mask, err := parseMark(next(&i))
			if err != nil {
				return r, err
			}
			add(func(r *run, _ Packet) bool { return r.mark&mask == val })
		case "--ctstate":
			states := next(&i)
			add(func(*run, Packet) bool { return strings.Contains(states, "NEW") })
		case "--probability":
			prob, err := strconv.ParseFloat(next(&i), 64)
			if err != nil {
				return r, fmt.Errorf("bad --probability in %q", line)
			}
			add(func(r *run, _ Packet) bool { return r.choose(prob) })
		case "--name":
			recentName = next(&i)
		case "--rcheck":
			add(func(r *run, p Packet) bool { return r.recent[recentName][p.Src] })
		case "--set":
			r.recentSet = "\x00" // resolved after --name below
		case "-j":
			r.target = next(&i)
		case "--or-mark", "--xor-mark", "--set-xmark":
			v, m, err := parseMark(next(&i))
			if err != nil {
				return r, fmt.Errorf("bad %s in %q", tok, line)
			}
			switch tok {
			case "--or-mark":
				m = v
			case "--xor-mark":
				m = 0
			}
			r.markValue, r.markMask = v, m
		case "--to-destination":
			ap, err := netip.ParseAddrPort(next(&i))
			if err != nil {
				return r, fmt.Errorf("bad --to-destination in %q", line)
			}
			r.toDest = ap
		case "-m", "--comment", "--mode", "--seconds", "--mask", "--reject-with":
			next(&i) // module names and options that do not change the outcome
		case "--rsource", "--reap", "--random-fully":
		default:
			return r, fmt.Errorf("unsupported token %q in %q", tok, line)
		}
	}
	if r.recentSet != "" {
		r.recentSet = recentName
	}
	if r.target == "" {
		return r, fmt.Errorf("rule without -j: %q", line)
	}
	return r, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.ParsePrefix(s)
}

func parseMark(s string) (val, mask uint32, err error) {
	v, m, ok := strings.Cut(s, "/")
	vv, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("bad mark %q", s)
	}
	mask = 0xffffffff
	if ok {
		mm, err := strconv.ParseUint(m, 0, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("bad mark %q", s)
		}
		mask = uint32(mm)
	}
	return uint32(vv), mask, nil
}

// tokenize splits on spaces, keeping double-quoted strings whole.
func tokenize(line string) ([]string, error) {
	var toks []string
	for line = strings.TrimSpace(line); line != ""; line = strings.TrimSpace(line) {
		if line[0] == '"' {
			end := strings.IndexByte(line[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated quote in %q", line)
			}
			toks = append(toks, line[1:end+1])
			line = line[end+2:]
			continue
		}
		tok, rest, _ := strings.Cut(line, " ")
		toks = append(toks, tok)
		line = rest
	}
	if len(toks) < 2 {
		return nil, fmt.Errorf("short rule %q", line)
	}
	return toks, nil
}
