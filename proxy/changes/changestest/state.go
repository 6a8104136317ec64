package changestest

import (
	"fmt"
	"net/netip"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hoist-project/hoist/proxy/changes"
)

// BigState has n TCP services (cluster IPs from 10.96.0.0/16) with eps
// ready endpoints each, for benchmarks.
func BigState(n, eps int) changes.State {
	st := changes.State{Services: map[changes.ServicePortName]*changes.ServicePort{}, Endpoints: map[changes.ServicePortName][]changes.Endpoint{}}
	for i := 0; i < n; i++ {
		name := changes.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "bench", Name: fmt.Sprintf("svc-%d", i)}, Protocol: v1.ProtocolTCP}
		st.Services[name] = &changes.ServicePort{Name: name, ClusterIP: netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)}), Port: 80, Protocol: v1.ProtocolTCP}
		for j := 0; j < eps; j++ {
			st.Endpoints[name] = append(st.Endpoints[name], changes.Endpoint{
				IP: netip.AddrFrom4([4]byte{10, 244, byte(i >> 8), byte(i)}), Port: int32(8000 + j), Ready: true, Serving: true})
		}
	}
	return st
}
