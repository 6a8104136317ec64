// Package hostgw is the host-gw backend: a route per remote node's subnet
// via that node's public IP. It needs every node on one L2 segment; a peer
// behind a router is refused with a clear error (use vxlan for those).
package hostgw

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/hoist-project/hoist/flannel/backend"
	"github.com/hoist-project/hoist/flannel/config"
	"github.com/hoist-project/hoist/flannel/reconcile"
	"github.com/hoist-project/hoist/flannel/subnet"
)

// Backend is the host-gw backend.
type Backend struct{ env backend.Env }

// New returns the host-gw backend.
func New(env backend.Env) *Backend { return &Backend{env: env} }

// RegisterNetwork implements backend.Backend.
func (b *Backend) RegisterNetwork(ctx context.Context, cfg config.Config) (backend.Network, error) {
	attrs := subnet.Attrs{PublicIP: b.env.PublicIP, BackendType: config.HostGW, NodeName: b.env.NodeName}
	l, err := b.env.AcquireLease(ctx, attrs)
	if err != nil {
		return nil, err
	}
	mtu := b.env.IfaceMTU
	if cfg.MTU != 0 {
		mtu = cfg.MTU
	}
	return &network{env: b.env, lease: l, mtu: mtu}, nil
}

type network struct {
	env   backend.Env
	lease *subnet.Lease
	mtu   int
}

func (n *network) Lease() *subnet.Lease { return n.lease }
func (n *network) MTU() int             { return n.mtu }

func (n *network) Run(ctx context.Context) error {
	return backend.RunLoop(ctx, n.env, n.lease.Subnet, config.HostGW, nil, n.sync)
}

// sync programs one route per reachable peer; unreachable peers are
// logged and counted but neither stop the others from being programmed nor
// make this node unhealthy (the fault is the peer's placement).
func (n *network) sync(_ context.Context, peers []subnet.Lease, why backend.Reason) error {
	desired := map[netip.Prefix]backend.Route{}
	for _, p := range peers {
		link, direct, err := backend.Connected(p.Attrs.PublicIP)
		if err == nil && !direct {
			err = fmt.Errorf("peer %s (subnet %s) is not on the same L2 segment as this node: host-gw needs a connected route to every node; use the vxlan backend", p.Attrs.PublicIP, p.Subnet)
		}
		if err != nil {
			n.env.Metrics.BackendErrors.WithLabelValues("unreachable-peer").Inc()
			n.env.Log.Error("skipping peer", "err", err)
			continue
		}
		desired[p.Subnet] = backend.Route{Dst: p.Subnet, Gw: p.Attrs.PublicIP, Link: link}
	}
	actual, err := backend.OwnedRoutes()
	if err != nil {
		return err
	}
	plan := reconcile.Diff(desired, actual)
	if err := backend.ApplyRoutes(plan); err != nil {
		return err
	}
	n.env.Count("route", why, len(plan.Upsert), len(plan.Delete))
	return nil
}
