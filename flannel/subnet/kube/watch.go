package kube

import (
	"context"
	"maps"
	"net/netip"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/hoist-project/hoist/flannel/subnet"
)

// WatchLeases implements subnet.Watcher. Every batch is a Snapshot of the
// leases all Nodes publish (level-triggered: a missed event cannot leave a
// stale route); a batch is only sent when the leases changed, so the Node
// status heartbeats of every kubelet do not each cause a sync.
func (m *Manager) WatchLeases(ctx context.Context, out chan<- subnet.Batch) error {
	if err := m.waitSynced(ctx); err != nil {
		return nil
	}
	var last map[netip.Prefix]subnet.Lease
	for {
		changed := m.nextChange()
		cur, err := m.leases()
		if err != nil {
			return err
		}
		if last == nil || !maps.EqualFunc(cur, last, sameLease) {
			b := subnet.Batch{Snapshot: true}
			for _, l := range cur {
				b.Events = append(b.Events, subnet.Event{Type: subnet.Added, Lease: l})
			}
			select {
			case out <- b:
			case <-ctx.Done():
				return nil
			}
			last = cur
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// leases lists every node's lease by subnet; of two nodes claiming one
// subnet (a podCIDR edited by hand) the first by name wins and the other is
// logged.
func (m *Manager) leases() (map[netip.Prefix]subnet.Lease, error) {
	nodes, err := m.nodes.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	out := map[netip.Prefix]subnet.Lease{}
	for _, n := range nodes {
		l, ok := leaseOf(n)
		if !ok || !m.network.Network.Contains(l.Subnet.Addr()) {
			continue
		}
		if o, dup := out[l.Subnet]; dup {
			if o.Attrs.NodeName > n.Name {
				out[l.Subnet] = l
				o, l = l, o
			}
			m.log.Error("two nodes have the same spec.podCIDR: ignoring the second; fix its podCIDR", "podCIDR", l.Subnet, "kept", o.Attrs.NodeName, "ignored", l.Attrs.NodeName)
			continue
		}
		out[l.Subnet] = l
	}
	return out, nil
}

func sameLease(a, b subnet.Lease) bool {
	return a.Subnet == b.Subnet && a.Attrs.PublicIP == b.Attrs.PublicIP && a.Attrs.BackendType == b.Attrs.BackendType &&
		a.Attrs.NodeName == b.Attrs.NodeName && string(a.Attrs.BackendData) == string(b.Attrs.BackendData)
}
