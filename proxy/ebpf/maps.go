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
)

const (
	flagAffinity = 1
	scopeService = 0
)

// Maps is the complete desired content of the service and backend maps.
// It is pure data: rendering needs no kernel, and tests look packets up in
// it with Connect, mirroring the programs.
type Maps struct {
	Services map[ServiceKey]ServiceValue
	Backends map[BackendKey]BackendValue
}

// IDs hands out stable service IDs (the backend map's key prefix) so a
// sync rewrites only what changed. IDs of services that disappear are
// reused only after a sync no longer references them.
type IDs struct {
	byName map[changes.ServicePortName]uint32
	next   uint32
	free   []uint32
}

// NewIDs returns an empty allocator.
func NewIDs() *IDs { return &IDs{byName: map[changes.ServicePortName]uint32{}, next: 1} }

func (a *IDs) id(n changes.ServicePortName) uint32 {
	if id, ok := a.byName[n]; ok {
		return id
	}
	id := a.next
	if len(a.free) > 0 {
		id, a.free = a.free[len(a.free)-1], a.free[:len(a.free)-1]
	} else {
		a.next++
	}
	a.byName[n] = id
	return id
}

// retain frees the IDs of services not in keep.
func (a *IDs) retain(keep map[changes.ServicePortName]*changes.ServicePort) {
	for n, id := range a.byName {
		if _, ok := keep[n]; !ok {
			delete(a.byName, n)
			a.free = append(a.free, id)
		}
	}
}

// Render computes the maps for st: one service entry per cluster IP and
// external IP port, and count backend slots of its usable endpoints.
// internalTrafficPolicy Local narrows the backends to this node's.
func Render(st changes.State, ids *IDs) Maps {
	m := Maps{Services: map[ServiceKey]ServiceValue{}, Backends: map[BackendKey]BackendValue{}}
	ids.retain(st.Services)
	names := make([]changes.ServicePortName, 0, len(st.Services))
	for n := range st.Services {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return names[i].String() < names[j].String() }) // stable ID order
	for _, n := range names {
		sp := st.Services[n]
		eps := changes.Usable(st.Endpoints[n], sp.InternalPolicyLocal)
		val := ServiceValue{Id: ids.id(n), Count: uint16(len(eps))}
		if sp.AffinityTimeoutSeconds > 0 {
			val.Flags |= flagAffinity
			val.AffinityTimeout = uint32(sp.AffinityTimeoutSeconds)
		}
		for _, ip := range append([]netip.Addr{sp.ClusterIP}, sp.ExternalIPs...) {
			m.Services[ServiceKey{Vip: ip4(ip), Port: port(uint16(sp.Port)), Proto: proto(sp.Protocol), Scope: scopeService}] = val
		}
		for slot, e := range eps {
			m.Backends[BackendKey{Id: val.Id, Slot: uint16(slot)}] = BackendValue{Ip: ip4(e.IP), Port: port(uint16(e.Port))}
		}
	}
	return m
}

// Verdict of a simulated connect.
type Verdict int

const (
	Pass    Verdict = iota // not a service: unchanged
	Rewrite                // destination rewritten to a backend
	Refuse                 // a service without backends: ECONNREFUSED
)

// Connect simulates cgroup/connect4 without affinity: pick(n) chooses the
// random slot in [0, n).
func (m Maps) Connect(dst netip.AddrPort, protocol v1.Protocol, pick func(n int) int) (netip.AddrPort, Verdict) {
	svc, ok := m.Services[ServiceKey{Vip: ip4(dst.Addr()), Port: port(dst.Port()), Proto: proto(protocol)}]
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
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], be.Ip)
	var p [2]byte
	binary.NativeEndian.PutUint16(p[:], be.Port)
	return netip.AddrPortFrom(netip.AddrFrom4(b), binary.BigEndian.Uint16(p[:])), Rewrite
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
