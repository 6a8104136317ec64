package iptables

import (
	"context"
	"fmt"

	"github.com/hoist-project/hoist/proxy/changes"
	"github.com/hoist-project/hoist/proxy/healthcheck"
)

// Proxier is the iptables data path: render the whole state, apply it.
type Proxier struct {
	cfg     Config
	applier *Applier
	metrics *healthcheck.Metrics // may be nil
}

// NewProxier checks the host's iptables backend and prepares the node
// (route_localnet when localhost NodePorts are on).
func NewProxier(ctx context.Context, cfg Config, run Runner, m *healthcheck.Metrics) (*Proxier, error) {
	if _, err := DetectBackend(ctx, run); err != nil {
		return nil, err
	}
	if cfg.LocalhostNodePorts {
		if _, err := run.Run(ctx, nil, "sysctl", "-w", "net.ipv4.conf.all.route_localnet=1"); err != nil {
			return nil, fmt.Errorf("localhost NodePorts need route_localnet: %w", err)
		}
	}
	return &Proxier{cfg: cfg, applier: NewApplier(run), metrics: m}, nil
}

// Sync renders st and applies it; full forces a full sync.
func (p *Proxier) Sync(ctx context.Context, st changes.State, full bool) error {
	rs := Render(p.cfg, st)
	res, err := p.applier.Apply(ctx, rs, full)
	if p.metrics != nil {
		p.metrics.RestoreFailures.Add(float64(res.RestoreFailures))
		if err == nil {
			for _, t := range []string{Nat, Filter} {
				p.metrics.Rules.WithLabelValues(t).Set(float64(rs.RuleCount(t)))
			}
		}
	}
	return err
}

// Cleanup removes everything the iptables mode installed.
func (p *Proxier) Cleanup(ctx context.Context) error { return p.applier.Cleanup(ctx) }
