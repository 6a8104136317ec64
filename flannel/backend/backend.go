// Package backend holds what flanneld's data-path backends share: the
// Backend/Network contract (register once, then run), the environment the
// daemon hands them, the lease-watching resync loop, and the owned routes
// (tagged with hoist's route protocol) that both backends program.
package backend

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/hoist-project/hoist/flannel/config"
	"github.com/hoist-project/hoist/flannel/metrics"
	"github.com/hoist-project/hoist/flannel/subnet"
)

// Backend sets a data path up for a network.
type Backend interface {
	// RegisterNetwork prepares the data path, acquires the node's lease (with
	// the backend's attributes) and returns the network to run.
	RegisterNetwork(ctx context.Context, cfg config.Config) (Network, error)
}

// Network is a registered data path.
type Network interface {
	Lease() *subnet.Lease
	MTU() int
	// Run keeps the data path in line with the other nodes' leases until ctx ends.
	Run(ctx context.Context) error
}

// Env is what the daemon gives every backend.
type Env struct {
	NodeName   string
	IfaceName  string // the interface carrying PublicIP ("eth0")
	IfaceIndex int
	IfaceMTU   int
	PublicIP   netip.Addr
	PrevSubnet netip.Prefix // from subnet.env; preferred when acquiring
	Manager    subnet.Manager
	Watcher    subnet.Watcher
	Resync     time.Duration
	Metrics    *metrics.Metrics
	Log        *slog.Logger
}

// AcquireLease acquires the node's lease with attrs, retrying (and saying
// why) until it succeeds or ctx ends: flanneld cannot do anything useful
// without a subnet, and the cause (etcd down, IP conflict) may be fixed live.
func (e Env) AcquireLease(ctx context.Context, attrs subnet.Attrs) (*subnet.Lease, error) {
	backoff := 500 * time.Millisecond
	for {
		l, err := e.Manager.AcquireLease(ctx, attrs, e.PrevSubnet)
		if err == nil {
			e.Log.Info("subnet lease acquired", "subnet", l.Subnet, "publicIP", attrs.PublicIP, "expires", l.Expiration.Format(time.RFC3339))
			e.Metrics.LeaseExpiry.Set(float64(l.Expiration.Unix()))
			return l, nil
		}
		e.Log.Error("cannot acquire a subnet lease; retrying", "err", err, "retryIn", backoff)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}
