// Package subnet defines what a node's pod-subnet lease is, the small
// interface every lease store (etcd, kube) implements, and the pure allocator
// that picks a free subnet.
package subnet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Attrs are the lease attributes in upstream flannel's JSON shape, e.g.
// {"PublicIP":"10.0.0.2","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"…"}}.
// NodeName is hoist's addition (upstream ignores it): it tells a restart of the
// same node apart from a second node claiming the same public IP.
type Attrs struct {
	PublicIP    netip.Addr      `json:"PublicIP"`
	BackendType string          `json:"BackendType"`
	BackendData json.RawMessage `json:"BackendData,omitempty"`
	NodeName    string          `json:"NodeName,omitempty"`
}

// Lease is one node's claim on a subnet.
type Lease struct {
	Subnet     netip.Prefix
	Attrs      Attrs
	Expiration time.Time
}

// Manager acquires and keeps this node's lease. Implementations: subnet/etcd, subnet/kube.
type Manager interface {
	// AcquireLease claims a subnet for the node described by attrs; prev, when
	// valid, is the subnet this node held before (from subnet.env) and is
	// preferred. A lease already held by attrs.NodeName is kept, with its
	// attributes updated.
	AcquireLease(ctx context.Context, attrs Attrs, prev netip.Prefix) (*Lease, error)
	// RenewLease extends l's expiration (updating l) or fails with ErrLeaseGone.
	RenewLease(ctx context.Context, l *Lease) error
}

// Watcher reports every lease of the network.
type Watcher interface {
	// WatchLeases sends batches of changes to out until ctx ends or the store
	// fails for good. The first batch, and any after the watch could not
	// resume (history compacted), is a Snapshot that replaces all known leases.
	WatchLeases(ctx context.Context, out chan<- Batch) error
}

// ErrLeaseGone is returned by RenewLease when the lease expired or was deleted.
var ErrLeaseGone = fmt.Errorf("subnet lease no longer exists")

// EventType says what happened to a lease.
type EventType int

const (
	Added   EventType = iota // created or changed
	Removed                  // deleted or expired
)

// Event is one change of one lease.
type Event struct {
	Type  EventType
	Lease Lease
}

// Batch is what a Watcher delivers at once.
type Batch struct {
	Snapshot bool // Events lists every current lease (all Added)
	Events   []Event
}

// Apply folds b into the set of known leases, keyed by subnet.
func (b Batch) Apply(known map[netip.Prefix]Lease) {
	if b.Snapshot {
		clear(known)
	}
	for _, e := range b.Events {
		if e.Type == Removed {
			delete(known, e.Lease.Subnet)
		} else {
			known[e.Lease.Subnet] = e.Lease
		}
	}
}

// KeyName renders a subnet the way upstream names lease keys: "10.244.1.0-24".
func KeyName(p netip.Prefix) string {
	return fmt.Sprintf("%s-%d", p.Addr(), p.Bits())
}

// ParseKeyName is the inverse of KeyName.
func ParseKeyName(s string) (netip.Prefix, error) {
	addr, bits, ok := strings.Cut(s, "-")
	if !ok {
		return netip.Prefix{}, fmt.Errorf("subnet key %q: want <ip>-<prefix length>", s)
	}
	p, err := netip.ParsePrefix(addr + "/" + bits)
	if err != nil || p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("subnet key %q: not a subnet", s)
	}
	return p, nil
}
