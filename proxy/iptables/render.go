package iptables

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/hoist-project/hoist/proxy/changes"
)

// MasqMark is the packet mark bit that asks KUBE-POSTROUTING to masquerade.
const MasqMark = "0x4000"

// Config holds the node facts the rendering depends on.
type Config struct {
	// ClusterCIDR, when valid, makes traffic from outside it to a cluster IP
	// masqueraded (so replies come back through this node).
	ClusterCIDR netip.Prefix
	// NodePortAddresses limits NodePorts to these local addresses; empty
	// means every local address.
	NodePortAddresses []netip.Addr
	// LocalhostNodePorts also serves NodePorts on 127.0.0.0/8 (needs
	// net.ipv4.conf.all.route_localnet=1, which the applier sets).
	LocalhostNodePorts bool
}

// Render computes the complete desired ruleset for st. It is pure and
// deterministic: the same input gives byte-identical output.
func Render(cfg Config, st changes.State) *Ruleset {
	r := &renderer{cfg: cfg, chains: map[string]map[string]*Chain{Nat: {}, Filter: {}}}
	for _, name := range []string{"KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"} {
		r.chain(Nat, name)
	}
	for _, name := range []string{"KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD"} {
		r.chain(Filter, name)
	}
	names := make([]changes.ServicePortName, 0, len(st.Services))
	for n := range st.Services {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		return names[i].String()+string(names[i].Protocol) < names[j].String()+string(names[j].Protocol)
	})
	for _, n := range names {
		r.service(st.Services[n], st.Endpoints[n])
	}
	r.fixed()
	return r.ruleset()
}

type renderer struct {
	cfg    Config
	chains map[string]map[string]*Chain
	order  map[string][]string
}

func (r *renderer) chain(table, name string) *Chain {
	if c, ok := r.chains[table][name]; ok {
		return c
	}
	c := &Chain{Name: name}
	r.chains[table][name] = c
	if r.order == nil {
		r.order = map[string][]string{}
	}
	r.order[table] = append(r.order[table], name)
	return c
}

func (r *renderer) add(table, chain string, args ...string) {
	c := r.chain(table, chain)
	c.Rules = append(c.Rules, "-A "+chain+" "+strings.Join(args, " "))
}

// ruleset orders the fixed chains first (as created) and then the per-service
// chains sorted by name, so output never depends on map order.
func (r *renderer) ruleset() *Ruleset {
	rs := &Ruleset{Tables: map[string][]*Chain{}}
	for table, names := range r.order {
		fixed, perSvc := []string{}, []string{}
		for _, n := range names {
			if isServiceChain(n) {
				perSvc = append(perSvc, n)
			} else {
				fixed = append(fixed, n)
			}
		}
		sort.Strings(perSvc)
		for _, n := range append(fixed, perSvc...) {
			rs.Tables[table] = append(rs.Tables[table], r.chains[table][n])
		}
	}
	return rs
}

func isServiceChain(n string) bool {
	for _, p := range []string{"KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-SEP-"} {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

// fixed renders the chains that do not depend on services.
func (r *renderer) fixed() {
	r.add(Nat, "KUBE-MARK-MASQ", "-j", "MARK", "--or-mark", MasqMark)
	r.add(Nat, "KUBE-POSTROUTING", "-m", "mark", "!", "--mark", MasqMark+"/"+MasqMark, "-j", "RETURN")
	r.add(Nat, "KUBE-POSTROUTING", "-j", "MARK", "--xor-mark", MasqMark)
	r.add(Nat, "KUBE-POSTROUTING", "-m", "comment", "--comment", quote("kubernetes service traffic requiring SNAT"), "-j", "MASQUERADE", "--random-fully")
	// NodePorts last: they match on the destination's address type only.
	comment := []string{"-m", "comment", "--comment", quote("kubernetes service nodeports; NOTE: this must be the last rule in this chain")}
	switch {
	case len(r.cfg.NodePortAddresses) > 0:
		addrs := append([]netip.Addr{}, r.cfg.NodePortAddresses...)
		if r.cfg.LocalhostNodePorts {
			addrs = append(addrs, netip.MustParseAddr("127.0.0.1"))
		}
		for _, a := range addrs {
			r.add(Nat, "KUBE-SERVICES", append(append([]string{}, comment...), "-d", host(a), "-j", "KUBE-NODEPORTS")...)
		}
	case r.cfg.LocalhostNodePorts:
		r.add(Nat, "KUBE-SERVICES", append(comment, "-m", "addrtype", "--dst-type", "LOCAL", "-j", "KUBE-NODEPORTS")...)
	default:
		r.add(Nat, "KUBE-SERVICES", append(comment, "!", "-d", "127.0.0.0/8", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "KUBE-NODEPORTS")...)
	}
	r.add(Filter, "KUBE-FORWARD", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
	r.add(Filter, "KUBE-FORWARD", "-m", "comment", "--comment", quote("kubernetes forwarding rules"), "-m", "mark", "--mark", MasqMark+"/"+MasqMark, "-j", "ACCEPT")
	r.add(Filter, "KUBE-FORWARD", "-m", "comment", "--comment", quote("kubernetes forwarding conntrack rule"), "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")
}

// service renders one service port: its entry rules, its load-balancing
// chains (cluster-wide SVC and node-local SVL), its external chain EXT and
// one SEP chain per endpoint in use; or REJECT/DROP rules in the filter
// table when there is nothing to send new connections to.
func (r *renderer) service(sp *changes.ServicePort, eps []changes.Endpoint) {
	name := sp.Name.String()
	proto := strings.ToLower(string(sp.Protocol))
	match := func(dst string, port int32) []string {
		return []string{"-d", dst, "-p", proto, "-m", proto, "--dport", fmt.Sprint(port)}
	}
	hash := chainHash(sp.Name.String() + string(sp.Protocol))
	svc, svl, ext := "KUBE-SVC-"+hash, "KUBE-SVL-"+hash, "KUBE-EXT-"+hash

	cluster := changes.Usable(eps, false)
	local := changes.Usable(eps, true)
	internalChain, internalEPs := svc, cluster
	if sp.InternalPolicyLocal {
		internalChain, internalEPs = svl, local
	}
	externalEPs := cluster
	if sp.ExternalPolicyLocal {
		externalEPs = local
	}
	hasExternal := sp.NodePort != 0 || len(sp.ExternalIPs) > 0

	// Cluster IP.
	cm := func(s string) []string { return []string{"-m", "comment", "--comment", quote(name + " " + s)} }
	if len(internalEPs) > 0 {
		r.add(Nat, "KUBE-SERVICES", append(append(match(host(sp.ClusterIP), sp.Port), cm("cluster IP")...), "-j", internalChain)...)
		if r.cfg.ClusterCIDR.IsValid() {
			r.add(Nat, internalChain, append(append([]string{"!", "-s", r.cfg.ClusterCIDR.String()}, match(host(sp.ClusterIP), sp.Port)...), append(cm("cluster IP"), "-j", "KUBE-MARK-MASQ")...)...)
		}
	} else {
		reason, target := "has no endpoints", []string{"-j", "REJECT", "--reject-with", "icmp-port-unreachable"}
		if len(cluster) > 0 {
			reason, target = "has no local endpoints", []string{"-j", "DROP"}
		}
		r.add(Filter, "KUBE-SERVICES", append(append(match(host(sp.ClusterIP), sp.Port), cm(reason)...), target...)...)
	}

	// NodePorts and external IPs.
	if hasExternal {
		if len(externalEPs) > 0 || (sp.ExternalPolicyLocal && len(cluster) > 0) {
			for _, ip := range sp.ExternalIPs {
				r.add(Nat, "KUBE-SERVICES", append(append(match(host(ip), sp.Port), cm("external IP")...), "-j", ext)...)
			}
			if sp.NodePort != 0 {
				r.add(Nat, "KUBE-NODEPORTS", append([]string{"-p", proto}, append(cm("node port"), "-m", proto, "--dport", fmt.Sprint(sp.NodePort), "-j", ext)...)...)
			}
			r.external(sp, ext, svc, svl, len(local) > 0)
		}
		if len(externalEPs) == 0 {
			reason, target := "has no endpoints", []string{"-j", "REJECT", "--reject-with", "icmp-port-unreachable"}
			if len(cluster) > 0 {
				reason, target = "has no local endpoints", []string{"-j", "DROP"}
			}
			for _, ip := range sp.ExternalIPs {
				r.add(Filter, "KUBE-EXTERNAL-SERVICES", append(append(match(host(ip), sp.Port), cm(reason)...), target...)...)
			}
			if sp.NodePort != 0 {
				r.add(Filter, "KUBE-EXTERNAL-SERVICES", append(append([]string{"-m", "addrtype", "--dst-type", "LOCAL", "-p", proto, "-m", proto, "--dport", fmt.Sprint(sp.NodePort)}, cm(reason)...), target...)...)
			}
		}
	}

	// Load-balancing chains, only those something jumps to.
	needSVC := len(cluster) > 0 && (!sp.InternalPolicyLocal || hasExternal)
	needSVL := len(local) > 0 && (sp.InternalPolicyLocal || (hasExternal && sp.ExternalPolicyLocal))
	if needSVC {
		r.balance(sp, svc, cluster)
	}
	if needSVL {
		r.balance(sp, svl, local)
	}
}

// external renders KUBE-EXT-*: masquerade everything for policy Cluster;
// for policy Local keep the client IP and use local endpoints, except for
// pods and the node itself, which still reach the whole cluster.
func (r *renderer) external(sp *changes.ServicePort, ext, svc, svl string, hasLocal bool) {
	if !sp.ExternalPolicyLocal {
		r.add(Nat, ext, "-m", "comment", "--comment", quote("masquerade traffic for "+sp.Name.String()+" external destinations"), "-j", "KUBE-MARK-MASQ")
		r.add(Nat, ext, "-j", svc)
		return
	}
	if r.cfg.ClusterCIDR.IsValid() {
		r.add(Nat, ext, "-s", r.cfg.ClusterCIDR.String(), "-m", "comment", "--comment", quote("pod traffic for "+sp.Name.String()+" external destinations"), "-j", svc)
	}
	r.add(Nat, ext, "-m", "comment", "--comment", quote("masquerade LOCAL traffic for "+sp.Name.String()+" external destinations"), "-m", "addrtype", "--src-type", "LOCAL", "-j", "KUBE-MARK-MASQ")
	r.add(Nat, ext, "-m", "comment", "--comment", quote("route LOCAL traffic for "+sp.Name.String()+" external destinations"), "-m", "addrtype", "--src-type", "LOCAL", "-j", svc)
	if hasLocal {
		r.add(Nat, ext, "-j", svl)
	}
}

// balance renders a chain spreading new connections over eps with
// statistic-mode random probabilities 1/n, 1/(n-1), ... 1, after
// sticky-session checks when session affinity is on; and one SEP chain per
// endpoint.
func (r *renderer) balance(sp *changes.ServicePort, chain string, eps []changes.Endpoint) {
	name := sp.Name.String()
	seps := make([]string, len(eps))
	for i, e := range eps {
		seps[i] = "KUBE-SEP-" + chainHash(name+string(sp.Protocol)+e.AddrPort().String())
		r.endpoint(sp, seps[i], e)
	}
	if sp.AffinityTimeoutSeconds > 0 {
		for i, e := range eps {
			r.add(Nat, chain, "-m", "comment", "--comment", quote(name+" -> "+e.AddrPort().String()), "-m", "recent", "--name", seps[i], "--mask", "255.255.255.255", "--rsource", "--rcheck", "--seconds", fmt.Sprint(sp.AffinityTimeoutSeconds), "--reap", "-j", seps[i])
		}
	}
	for i, e := range eps {
		args := []string{"-m", "comment", "--comment", quote(name + " -> " + e.AddrPort().String())}
		if n := len(eps) - i; n > 1 {
			args = append(args, "-m", "statistic", "--mode", "random", "--probability", fmt.Sprintf("%0.10f", 1.0/float64(n)))
		}
		r.add(Nat, chain, append(args, "-j", seps[i])...)
	}
}

// endpoint renders KUBE-SEP-*: hairpin masquerade, then DNAT.
func (r *renderer) endpoint(sp *changes.ServicePort, sep string, e changes.Endpoint) {
	if c := r.chains[Nat][sep]; c != nil {
		return // shared by SVC and SVL
	}
	name := sp.Name.String()
	proto := strings.ToLower(string(sp.Protocol))
	r.add(Nat, sep, "-s", host(e.IP), "-m", "comment", "--comment", quote(name), "-j", "KUBE-MARK-MASQ")
	args := []string{"-p", proto, "-m", "comment", "--comment", quote(name)}
	if sp.AffinityTimeoutSeconds > 0 {
		args = append(args, "-m", "recent", "--set", "--name", sep, "--mask", "255.255.255.255", "--rsource")
	}
	r.add(Nat, sep, append(args, "-m", proto, "-j", "DNAT", "--to-destination", e.AddrPort().String())...)
}

func chainHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base32.StdEncoding.EncodeToString(sum[:])[:16]
}

func host(a netip.Addr) string { return netip.PrefixFrom(a, a.BitLen()).String() }

func quote(s string) string { return `"` + s + `"` }
