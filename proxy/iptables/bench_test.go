package iptables_test

import (
	"testing"

	ct "github.com/hoist-project/hoist/proxy/changes/changestest"
	"github.com/hoist-project/hoist/proxy/iptables"
)

// BenchmarkRenderFull10k renders and formats a full sync of 10,000
// services × 5 endpoints.
func BenchmarkRenderFull10k(b *testing.B) {
	st := ct.BigState(10000, 5)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		rs := iptables.Render(iptables.Config{}, st)
		b.SetBytes(int64(len(rs.Restore(nil, nil))))
	}
}

// BenchmarkRenderPartial10k renders 10,000 services after one endpoint
// changed and formats the partial batch.
func BenchmarkRenderPartial10k(b *testing.B) {
	st := ct.BigState(10000, 5)
	prev := iptables.Render(iptables.Config{}, st)
	for name := range st.Services {
		st.Endpoints[name] = st.Endpoints[name][1:]
		break
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		rs := iptables.Render(iptables.Config{}, st)
		if len(rs.Restore(prev, nil)) == 0 {
			b.Fatal("empty partial batch")
		}
	}
}
