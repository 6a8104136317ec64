package ebpf

import (
	"encoding/binary"
	"net/netip"
	"sort"

	v1 "k8s.io/api/core/v1"

	"github.com/hoist-project/hoist/proxy/changes"
)

// Map entry types, as laid out by bpf/proxy.c.
type (
	ServiceKey   = proxySvcKey
	ServiceValue = proxySvcValue
	BackendKey   = proxyBackendKey
	BackendValue = proxyBackendValue
	FlowKey      = proxyFlowKey
	FlowValue    = proxyFlowValue
	SNATKey      = proxySnatKey
	SNATValue    = proxySnatValue
)

const (
	flagAffinity  = 1
	scopeService  = 0 // socket hooks
	scopeNodePort = 1 // tc ingress from outside the node
	// externalSet marks the ID of a service's backend set for traffic
	// from outside (tc): externalTrafficPolicy decides its members.
	externalSet = 1 << 31
	// backendRemote flags an external-set backend on another node: tc
	// SNATs to it so its replies come back through this node.
	backendRemote = 1
)

// Maps is the complete desired content of the service and backend maps.
// It is pure data: rendering needs no kernel, and tests look packets up in
// it with Connect, mirroring the programs.
type Maps struct {
	Services map[ServiceKey]ServiceValue
	Backends map[BackendKey]BackendValue
}

// IDs hands out stable service IDs (the backend map's key prefix) so a
// sync rewrites only what changed. An ID released by one render is reused
// only from the one after, when the kernel no longer references it.
type IDs struct {
	byName  map[changes.ServicePortName]uint32
	used    map[uint32]bool
	next    uint32
	free    []uint32
	pending []uint32
	adopted map[ServiceKey]uint32
}

// NewIDs returns an empty allocator.
func NewIDs() *IDs {
	return &IDs{byName: map[changes.ServicePortName]uint32{}, used: map[uint32]bool{}, next: 1}
}

// Adopt takes over the IDs of service entries a previous process left in
// the maps, so a restarted proxy renders the same IDs and writes nothing
// for unchanged services. Call it before the first Render.
func (a *IDs) Adopt(services map[ServiceKey]ServiceValue) {
	a.adopted = map[ServiceKey]uint32{}
	for k, v := range services {
		if k.Scope != scopeService {
			continue
		}
		id := v.Id &^ externalSet
		a.adopted[k] = id
		a.used[id] = true
		if id >= a.next {
			a.next = id + 1
		}
	}
}

func (a *IDs) id(n changes.ServicePortName, key ServiceKey) uint32 {
	if id, ok := a.byName[n]; ok {
		return id
	}
	id, ok := a.adopted[key]
	if ok {
		delete(a.adopted, key)
	} else {
		for ; len(a.free) > 0 && id == 0; a.free = a.free[:len(a.free)-1] {
			if f := a.free[len(a.free)-1]; !a.used[f] {
				id = f
			}
		}
		for id == 0 {
			if !a.used[a.next] {
				id = a.next
			}
			a.next++
		}
	}
	a.byName[n] = id
	a.used[id] = true
	return id
}

// retain releases the IDs of services not in keep (reusable a render later).
func (a *IDs) retain(keep map[changes.ServicePortName]*changes.ServicePort) {
	a.free = append(a.free, a.pending...)
	a.pending = nil
	for n, id := range a.byName {
		if _, ok := keep[n]; !ok {
			delete(a.byName, n)
			a.release(id)
		}
	}
}

func (a *IDs) release(id uint32) {
	delete(a.used, id)
	a.pending = append(a.pending, id)
}

// finishAdoption releases adopted IDs no service claimed.
func (a *IDs) finishAdoption() {
	if len(a.adopted) == 0 {
		a.adopted = nil
		return
	}
	claimed := map[uint32]bool{}
	for _, id := range a.byName {
		claimed[id] = true
	}
	for _, id := range a.adopted {
		if !claimed[id] && a.used[id] {
			a.release(id)
		}
	}
	a.adopted = nil
}

// Options are the node-specific inputs of Render.
type Options struct {
	// NodeAddresses serve NodePorts: to local processes through the socket
	// hooks and, from outside, through tc.
	NodeAddresses []netip.Addr
	// LocalhostNodePorts also serves NodePorts on 127.0.0.1 (local processes).
	LocalhostNodePorts bool
}

// Render computes the maps for st. Socket hooks (scope service) see every
// cluster IP and external IP port, and NodePorts on the node addresses,
// each with count backend slots of its usable endpoints
// (internalTrafficPolicy Local narrows cluster IPs to this node's). tc
// (scope NodePort) sees NodePorts and external IPs with the external set:
// every usable endpoint under externalTrafficPolicy Cluster, the remote
// ones flagged for SNAT (local ones keep the client IP); only this
// node's under Local (none: refused, the client IP always preserved).
func Render(st changes.State, ids *IDs, opt Options) Maps {
	m := Maps{Services: map[ServiceKey]ServiceValue{}, Backends: map[BackendKey]BackendValue{}}
	ids.retain(st.Services)
	names := make([]changes.ServicePortName, 0, len(st.Services))
	for n := range st.Services {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return names[i].String() < names[j].String() }) // stable ID order
	nodeAddrs := opt.NodeAddresses
	if opt.LocalhostNodePorts {
		nodeAddrs = append(append([]netip.Addr(nil), nodeAddrs...), netip.MustParseAddr("127.0.0.1"))
	}
	for _, n := range names {
		sp := st.Services[n]
		pr := proto(sp.Protocol)
		key := func(ip netip.Addr, p int32, scope uint8) ServiceKey {
			return ServiceKey{Vip: ip4(ip), Port: port(uint16(p)), Proto: pr, Scope: scope}
		}
		id := ids.id(n, key(sp.ClusterIP, sp.Port, scopeService))
		set := func(id uint32, eps []changes.Endpoint, external bool) ServiceValue {
			val := ServiceValue{Id: id, Count: uint16(len(eps))}
			if sp.AffinityTimeoutSeconds > 0 {
				val.Flags |= flagAffinity
				val.AffinityTimeout = uint32(sp.AffinityTimeoutSeconds)
			}
			for slot, e := range eps {
				be := BackendValue{Ip: ip4(e.IP), Port: port(uint16(e.Port))}
				if external && !e.Local {
					be.Flags = backendRemote
				}
				m.Backends[BackendKey{Id: id, Slot: uint16(slot)}] = be
			}
			return val
		}
		internal := set(id, changes.Usable(st.Endpoints[n], sp.InternalPolicyLocal), false)
		for _, ip := range append([]netip.Addr{sp.ClusterIP}, sp.ExternalIPs...) {
			m.Services[key(ip, sp.Port, scopeService)] = internal
		}
		if len(sp.ExternalIPs) == 0 && sp.NodePort == 0 {
			continue
		}
		external := set(id|externalSet, changes.Usable(st.Endpoints[n], sp.ExternalPolicyLocal), true)
		for _, ip := range sp.ExternalIPs {
			m.Services[key(ip, sp.Port, scopeNodePort)] = external
		}
		if sp.NodePort == 0 {
			continue
		}
		for _, ip := range nodeAddrs {
			m.Services[key(ip, sp.NodePort, scopeService)] = internal
			if !ip.IsLoopback() {
				m.Services[key(ip, sp.NodePort, scopeNodePort)] = external
			}
		}
	}
	ids.finishAdoption()
	return m
}

// Verdict of a simulated connect.
type Verdict int

const (
	Pass    Verdict = iota // not a service: unchanged
	Rewrite                // destination rewritten to a backend
	Refuse                 // a service without backends: ECONNREFUSED
	SNAT                   // (tc) to a remote backend, source rewritten to the node
)

// Connect simulates cgroup/connect4 without affinity: pick(n) chooses the
// random slot in [0, n).
func (m Maps) Connect(dst netip.AddrPort, protocol v1.Protocol, pick func(n int) int) (netip.AddrPort, Verdict) {
	return m.translate(scopeService, dst, protocol, pick)
}

// Ingress simulates the tc ingress program on a packet from outside the
// node: Refuse means it passes unchanged to a stack with no listener,
// Rewrite a DNAT to a local backend keeping the client IP, SNAT a DNAT
// to a remote backend from the node address.
func (m Maps) Ingress(dst netip.AddrPort, protocol v1.Protocol, pick func(n int) int) (netip.AddrPort, Verdict) {
	return m.translate(scopeNodePort, dst, protocol, pick)
}

func (m Maps) translate(scope uint8, dst netip.AddrPort, protocol v1.Protocol, pick func(n int) int) (netip.AddrPort, Verdict) {
	svc, ok := m.Services[ServiceKey{Vip: ip4(dst.Addr()), Port: port(dst.Port()), Proto: proto(protocol), Scope: scope}]
	switch {
	case !ok:
		return dst, Pass
	case svc.Count == 0:
		return dst, Refuse
	}
	be, ok := m.Backends[BackendKey{Id: svc.Id, Slot: uint16(pick(int(svc.Count)))}]
	if !ok {
		return dst, Pass
	}
	v := Rewrite
	if scope == scopeNodePort && be.Flags&backendRemote != 0 {
		v = SNAT
	}
	return netip.AddrPortFrom(addr(be.Ip), hostPort(be.Port)), v
}

// addr is the inverse of ip4.
func addr(ip uint32) netip.Addr {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], ip)
	return netip.AddrFrom4(b)
}

// hostPort is the inverse of port.
func hostPort(p uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], p)
	return binary.BigEndian.Uint16(b[:])
}

// ip4 is the address as struct bpf_sock_addr holds it: network byte order
// in a host-order u32.
func ip4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

// port is the port in network byte order in a host-order u16.
func port(p uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}

func proto(p v1.Protocol) uint8 {
	switch p {
	case v1.ProtocolUDP:
		return 17
	case v1.ProtocolSCTP:
		return 132
	}
	return 6
}
