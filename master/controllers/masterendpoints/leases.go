package masterendpoints

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Prefix is where masters announce themselves in etcd, next to the API
// objects under /registry (upstream: /registry/masterleases/<ip>).
const Prefix = "/registry/masterleases/"

// EtcdLeases announces masters as keys Prefix+"<ip>:<port>" attached to an
// etcd lease: a master that stops renewing (killed, partitioned) drops out
// when its lease expires, without anyone deleting it. Keying by address
// and port, not the address alone as upstream, keeps two masters on one
// machine (different ports) from overwriting each other's key.
type EtcdLeases struct {
	Client *clientv3.Client

	mu sync.Mutex
	id clientv3.LeaseID
}

func key(m Master) string { return Prefix + m.String() }

// Renew keeps self announced for ttl from now: it refreshes the lease (a
// new one if it expired meanwhile) and writes the key only when it is
// missing or attached to another lease.
func (l *EtcdLeases) Renew(ctx context.Context, self Master, ttl time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.id != 0 {
		_, err := l.Client.KeepAliveOnce(ctx, l.id)
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			l.id = 0
		} else if err != nil {
			return fmt.Errorf("renew master lease: %w", err)
		}
	}
	if l.id == 0 {
		g, err := l.Client.Grant(ctx, int64(ttl/time.Second))
		if err != nil {
			return fmt.Errorf("grant master lease: %w", err)
		}
		l.id = g.ID
	}
	k, v := key(self), self.String()
	_, err := l.Client.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(k), "=", l.id), clientv3.Compare(clientv3.Value(k), "=", v)).
		Else(clientv3.OpPut(k, v, clientv3.WithLease(l.id))).
		Commit()
	if err != nil {
		return fmt.Errorf("write master lease %s: %w", k, err)
	}
	return nil
}

// Remove withdraws self at once (a graceful stop): revoking the lease
// deletes its key.
func (l *EtcdLeases) Remove(ctx context.Context, self Master) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.id == 0 {
		return nil
	}
	_, err := l.Client.Revoke(ctx, l.id)
	if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("revoke master lease: %w", err)
	}
	l.id = 0
	return nil
}

// List returns the masters whose leases are live.
func (l *EtcdLeases) List(ctx context.Context) ([]Master, error) {
	resp, err := l.Client.Get(ctx, Prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list master leases: %w", err)
	}
	out := make([]Master, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		m, err := ParseMaster(string(kv.Value))
		if err != nil {
			slog.Warn("ignoring malformed master lease", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

// ParseMaster parses "ip:port" ("[ip6]:port").
func ParseMaster(s string) (Master, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return Master{}, err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return Master{}, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return Master{}, fmt.Errorf("bad port in %q", s)
	}
	return Master{IP: ip.Unmap(), Port: int32(p)}, nil
}
