package iptables_test

import (
	"context"
	"testing"
	"time"

	"github.com/hoist-project/hoist/internal/testenv"
	ct "github.com/hoist-project/hoist/proxy/changes/changestest"
	"github.com/hoist-project/hoist/proxy/iptables"
)

// BenchmarkIntegrationSync10k applies 10,000 services × 5 endpoints to a
// node netns: a full sync, then a partial one after one endpoint change.
func BenchmarkIntegrationSync10k(b *testing.B) {
	testenv.RequireCommand(b, "iptables", "iptables")
	f := testenv.Fabric(b, 1)
	ctx := context.Background()
	st := ct.BigState(10000, 5)
	run := iptables.ExecRunner{Netns: f.Nodes()[0].Netns}
	p, err := iptables.NewProxier(ctx, iptables.Config{}, run, nil)
	if err != nil {
		b.Fatal(err)
	}
	for name := range st.Services {
		changed := ct.BigState(10000, 5)
		changed.Endpoints[name] = changed.Endpoints[name][1:]
		start := time.Now()
		if err := p.Sync(ctx, st, true); err != nil {
			b.Fatal(err)
		}
		full := time.Since(start)
		start = time.Now()
		if err := p.Sync(ctx, changed, false); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(full.Seconds(), "full-s")
		b.ReportMetric(time.Since(start).Seconds(), "partial-s")
		break
	}
}
