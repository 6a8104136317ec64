// Package etcd keeps subnet leases in etcd under upstream flannel's layout:
// the network config at <prefix>/config and one key per lease at
// <prefix>/subnets/<ip>-<len>, bound to an etcd lease whose TTL makes an
// abandoned subnet free again. Claims are compare-and-swap transactions, so
// two nodes never hold one subnet.
package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hoist-project/hoist/flannel/config"
	"github.com/hoist-project/hoist/flannel/subnet"
)

// DefaultPrefix is upstream flannel's etcd prefix.
const DefaultPrefix = "/coreos.com/network"

// DefaultTTL is how long a lease lives without renewal (upstream: 24h).
const DefaultTTL = 24 * time.Hour

// callTimeout bounds every single etcd request, so an outage shows up as an
// error the caller retries instead of a hang.
const callTimeout = 5 * time.Second

// NetworkConfig reads and validates <prefix>/config; leases are allocated
// from the network it names.
func (m *Manager) NetworkConfig(ctx context.Context) (config.Config, error) {
	key := m.root + "/config"
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := m.cli.Get(ctx, key)
	if err != nil {
		return config.Config{}, fmt.Errorf("read %s from etcd: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return config.Config{}, fmt.Errorf(`no network config at %s in etcd: write one, e.g. etcdctl put %s '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}'`, key, key)
	}
	c, err := config.Parse(resp.Kvs[0].Value)
	if err != nil {
		return c, fmt.Errorf("%s: %w", key, err)
	}
	m.mu.Lock()
	m.network = c
	m.mu.Unlock()
	return c, nil
}

// Manager is the etcd subnet.Manager and subnet.Watcher of one node: it
// remembers the etcd lease behind the key it acquired last, for renewal.
type Manager struct {
	cli    *clientv3.Client
	root   string // "/coreos.com/network"
	prefix string // "<root>/subnets/"
	ttl    time.Duration
	log    *slog.Logger

	mu      sync.Mutex
	network config.Config    // loaded by NetworkConfig
	held    clientv3.LeaseID // etcd lease of this node's key
}

// New returns a manager for the network under prefix (DefaultPrefix if
// empty) whose leases live ttl (DefaultTTL if zero).
func New(cli *clientv3.Client, prefix string, ttl time.Duration, log *slog.Logger) *Manager {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	root := strings.TrimSuffix(prefix, "/")
	return &Manager{cli: cli, root: root, prefix: root + "/subnets/", ttl: ttl, log: log}
}

// stored is one lease key as read from etcd.
type stored struct {
	lease   subnet.Lease
	key     string
	modRev  int64
	leaseID clientv3.LeaseID
}

// AcquireLease implements subnet.Manager.
func (m *Manager) AcquireLease(ctx context.Context, attrs subnet.Attrs, prev netip.Prefix) (*subnet.Lease, error) {
	value, err := json.Marshal(attrs)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	network := m.network
	m.mu.Unlock()
	if !network.Network.IsValid() {
		if network, err = m.NetworkConfig(ctx); err != nil {
			return nil, err
		}
	}
	for attempt := 0; attempt < 10; attempt++ {
		all, err := m.list(ctx)
		if err != nil {
			return nil, err
		}
		mine, err := findOwn(all, attrs)
		if err != nil {
			return nil, err
		}
		var key string
		var cond clientv3.Cmp
		if mine != nil && subnet.Usable(network, mine.lease.Subnet) {
			if mine.lease.Attrs.PublicIP != attrs.PublicIP {
				m.log.Info("public IP changed: keeping the subnet and updating the lease", "subnet", mine.lease.Subnet, "old", mine.lease.Attrs.PublicIP, "new", attrs.PublicIP)
			}
			key, cond = mine.key, clientv3.Compare(clientv3.ModRevision(mine.key), "=", mine.modRev)
		} else {
			if mine != nil { // held under an old network config: free it, or every restart would leak one more
				m.log.Warn("releasing this node's lease outside the current network config", "key", mine.key)
				if err := m.delete(ctx, mine.key); err != nil {
					return nil, err
				}
				continue
			}
			taken := map[netip.Prefix]bool{}
			for _, s := range all {
				taken[s.lease.Subnet] = true
			}
			p, err := subnet.Pick(network, taken, prev, nil)
			if err != nil {
				return nil, err
			}
			if prev.IsValid() && p != prev {
				m.log.Warn("previous subnet is no longer available: taking a new one", "previous", prev, "new", p)
			}
			key = m.prefix + subnet.KeyName(p)
			cond = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		}
		l, ok, err := m.put(ctx, key, cond, value)
		if err != nil {
			return nil, err
		}
		if ok {
			l.Attrs = attrs
			return l, nil
		}
		// Lost a race with another node: look again.
	}
	return nil, fmt.Errorf("acquire subnet lease: lost 10 compare-and-swap races in a row under %s; is another flanneld using node name %q?", m.prefix, attrs.NodeName)
}

// findOwn returns the lease this node already holds and refuses a second
// node with the same public IP: both would receive each other's traffic.
func findOwn(all []stored, attrs subnet.Attrs) (*stored, error) {
	var mine *stored
	for i, s := range all {
		a := s.lease.Attrs
		sameNode := attrs.NodeName != "" && a.NodeName == attrs.NodeName
		if sameNode || (a.NodeName == "" && a.PublicIP == attrs.PublicIP) {
			if mine == nil {
				mine = &all[i]
			}
			continue
		}
		if a.PublicIP == attrs.PublicIP {
			return nil, fmt.Errorf("public IP %s is already claimed by node %q (lease %s): two nodes cannot share a public IP; set --public-ip/--iface correctly or, if that node is gone, remove its lease with `etcdctl del %s`", attrs.PublicIP, a.NodeName, s.key, s.key)
		}
	}
	return mine, nil
}

// put writes value at key with a fresh etcd lease if cond holds.
func (m *Manager) put(ctx context.Context, key string, cond clientv3.Cmp, value []byte) (*subnet.Lease, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	grant, err := m.cli.Grant(ctx, int64(m.ttl/time.Second))
	if err != nil {
		return nil, false, fmt.Errorf("grant etcd lease: %w", err)
	}
	resp, err := m.cli.Txn(ctx).If(cond).Then(clientv3.OpPut(key, string(value), clientv3.WithLease(grant.ID))).Commit()
	if err != nil || !resp.Succeeded {
		_, _ = m.cli.Revoke(ctx, grant.ID) // unused; it would expire anyway
		if err != nil {
			return nil, false, fmt.Errorf("claim %s: %w", key, err)
		}
		return nil, false, nil
	}
	p, _ := subnet.ParseKeyName(strings.TrimPrefix(key, m.prefix))
	m.mu.Lock()
	m.held = grant.ID
	m.mu.Unlock()
	return &subnet.Lease{Subnet: p, Expiration: time.Now().Add(time.Duration(grant.TTL) * time.Second)}, true, nil
}

// RenewLease implements subnet.Manager.
func (m *Manager) RenewLease(ctx context.Context, l *subnet.Lease) error {
	m.mu.Lock()
	id := m.held
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	key := m.prefix + subnet.KeyName(l.Subnet)
	resp, err := m.cli.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("renew %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 || clientv3.LeaseID(resp.Kvs[0].Lease) != id {
		return subnet.ErrLeaseGone
	}
	ka, err := m.cli.KeepAliveOnce(ctx, id)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return subnet.ErrLeaseGone
	}
	if err != nil {
		return fmt.Errorf("renew %s: %w", key, err)
	}
	l.Expiration = time.Now().Add(time.Duration(ka.TTL) * time.Second)
	return nil
}

func (m *Manager) delete(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := m.cli.Delete(ctx, key); err != nil {
		return fmt.Errorf("release %s: %w", key, err)
	}
	return nil
}

func (m *Manager) list(ctx context.Context) ([]stored, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := m.cli.Get(ctx, m.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list leases under %s: %w", m.prefix, err)
	}
	var out []stored
	for _, kv := range resp.Kvs {
		l, err := m.decode(kv)
		if err != nil {
			m.log.Warn("ignoring malformed lease", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, stored{lease: l, key: string(kv.Key), modRev: kv.ModRevision, leaseID: clientv3.LeaseID(kv.Lease)})
	}
	return out, nil
}

func (m *Manager) decode(kv *mvccpb.KeyValue) (subnet.Lease, error) {
	p, err := subnet.ParseKeyName(strings.TrimPrefix(string(kv.Key), m.prefix))
	if err != nil {
		return subnet.Lease{}, err
	}
	l := subnet.Lease{Subnet: p}
	if kv.Value != nil {
		if err := json.Unmarshal(kv.Value, &l.Attrs); err != nil {
			return l, fmt.Errorf("lease attributes: %w", err)
		}
	}
	return l, nil
}

// WatchLeases implements subnet.Watcher. It resumes from the last revision
// seen after a broken watch and relists when that revision was compacted;
// while etcd is unreachable it keeps retrying and sends nothing, so the
// data path stays as it is.
func (m *Manager) WatchLeases(ctx context.Context, out chan<- subnet.Batch) error {
	var rev int64 // next revision to watch from; 0: relist
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		if rev == 0 {
			r, err := m.snapshot(ctx, out)
			if err != nil {
				m.log.Warn("list leases failed; retrying", "err", err)
				sleep(ctx, backoff)
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			rev = r
		}
		var err error
		rev, err = m.watchFrom(ctx, rev, out)
		if err != nil && ctx.Err() == nil {
			m.log.Warn("lease watch broken; resuming", "revision", rev, "err", err)
			sleep(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
		} else {
			backoff = 200 * time.Millisecond
		}
	}
	return ctx.Err()
}

func (m *Manager) snapshot(ctx context.Context, out chan<- subnet.Batch) (int64, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := m.cli.Get(cctx, m.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	b := subnet.Batch{Snapshot: true}
	for _, kv := range resp.Kvs {
		if l, err := m.decode(kv); err == nil {
			b.Events = append(b.Events, subnet.Event{Type: subnet.Added, Lease: l})
		}
	}
	select {
	case out <- b:
	case <-ctx.Done():
	}
	return resp.Header.Revision + 1, nil
}

// watchFrom streams changes from rev until the watch breaks; it returns the
// revision to resume from (0 when history was compacted).
func (m *Manager) watchFrom(ctx context.Context, rev int64, out chan<- subnet.Batch) (int64, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range m.cli.Watch(wctx, m.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev)) {
		if wr.CompactRevision != 0 {
			m.log.Info("lease history compacted; relisting", "revision", rev, "compacted", wr.CompactRevision)
			return 0, nil
		}
		if err := wr.Err(); err != nil {
			return rev, err
		}
		var b subnet.Batch
		for _, ev := range wr.Events {
			l, err := m.decode(ev.Kv)
			if err != nil {
				m.log.Warn("ignoring malformed lease", "key", string(ev.Kv.Key), "err", err)
				continue
			}
			t := subnet.Added
			if ev.Type == clientv3.EventTypeDelete {
				t = subnet.Removed
			}
			b.Events = append(b.Events, subnet.Event{Type: t, Lease: l})
		}
		rev = wr.Header.Revision + 1
		if len(b.Events) > 0 {
			select {
			case out <- b:
			case <-ctx.Done():
				return rev, nil
			}
		}
	}
	return rev, errors.New("watch channel closed (etcd unreachable or no leader)")
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
