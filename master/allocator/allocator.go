// Package allocator hands out unique values from a range (service ClusterIPs,
// NodePorts) with the allocation state kept in etcd: one key per allocated
// value, created with compare-and-swap. Two masters sharing one etcd, or a
// master restarting, can never hand out the same value twice.
package allocator

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/netip"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrAllocated means the value is held by another owner.
var ErrAllocated = errors.New("provided value is already allocated")

// ErrFull means every value of the range is allocated.
var ErrFull = errors.New("range is full")

// ErrOutOfRange means a requested value lies outside the range.
var ErrOutOfRange = errors.New("provided value is not in the valid range")

// Range maps offsets 0..Size-1 to values and back.
type Range interface {
	Size() int64
	Value(offset int64) string
	Offset(value string) (int64, bool)
	String() string
}

// Allocator allocates from one Range under an etcd prefix.
type Allocator struct {
	client *clientv3.Client
	prefix string
	rng    Range
}

// New returns an allocator storing its state under prefix (e.g.
// /registry/ranges/serviceips/).
func New(client *clientv3.Client, prefix string, r Range) *Allocator {
	return &Allocator{client: client, prefix: prefix, rng: r}
}

// Range returns the allocator's range.
func (a *Allocator) Range() Range { return a.rng }

// Claim allocates value for owner. Claiming a value the owner already holds
// succeeds.
func (a *Allocator) Claim(ctx context.Context, value, owner string) error {
	if _, ok := a.rng.Offset(value); !ok {
		return fmt.Errorf("%w: %s is not in %s", ErrOutOfRange, value, a.rng)
	}
	key := a.prefix + value
	resp, err := a.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, owner)).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return err
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) > 0 && string(kvs[0].Value) == owner {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrAllocated, value)
}

// Allocate picks a free value for owner, starting at a random offset.
func (a *Allocator) Allocate(ctx context.Context, owner string) (string, error) {
	size := a.rng.Size()
	start := rand.Int64N(size)
	for i := int64(0); i < size; i++ {
		v := a.rng.Value((start + i) % size)
		err := a.Claim(ctx, v, owner)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, ErrAllocated) {
			return "", err
		}
	}
	return "", fmt.Errorf("%w: %s", ErrFull, a.rng)
}

// Release frees value if owner holds it.
func (a *Allocator) Release(ctx context.Context, value, owner string) error {
	key := a.prefix + value
	_, err := a.client.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(key), "=", owner)).
		Then(clientv3.OpDelete(key)).Commit()
	return err
}

// Owner returns who holds value ("" if free).
func (a *Allocator) Owner(ctx context.Context, value string) (string, error) {
	resp, err := a.client.Get(ctx, a.prefix+value)
	if err != nil || len(resp.Kvs) == 0 {
		return "", err
	}
	return string(resp.Kvs[0].Value), nil
}

// Used counts allocated values.
func (a *Allocator) Used(ctx context.Context) (int64, error) {
	resp, err := a.client.Get(ctx, a.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Count, nil
}

// PortRange is an inclusive range of ports.
type PortRange struct{ First, Last int }

// ParsePortRange parses "30000-32767".
func ParsePortRange(s string) (PortRange, error) {
	var r PortRange
	if _, err := fmt.Sscanf(s, "%d-%d", &r.First, &r.Last); err != nil || r.First < 1 || r.Last > 65535 || r.First > r.Last {
		return r, fmt.Errorf("invalid port range %q: want FIRST-LAST within 1-65535", s)
	}
	return r, nil
}

// Size implements Range.
func (r PortRange) Size() int64 { return int64(r.Last - r.First + 1) }

// Value implements Range.
func (r PortRange) Value(off int64) string { return strconv.Itoa(r.First + int(off)) }

// Offset implements Range.
func (r PortRange) Offset(v string) (int64, bool) {
	p, err := strconv.Atoi(v)
	if err != nil || p < r.First || p > r.Last {
		return 0, false
	}
	return int64(p - r.First), true
}

func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

// IPRange is the usable addresses of a CIDR: the network address and (for
// IPv4) the broadcast address are excluded, as upstream.
type IPRange struct {
	prefix netip.Prefix
	base   *big.Int
	size   int64
}

// ParseCIDR parses a service CIDR such as 10.96.0.0/12.
func ParseCIDR(s string) (*IPRange, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return nil, fmt.Errorf("invalid service CIDR %q: %v", s, err)
	}
	p = p.Masked()
	hostBits := p.Addr().BitLen() - p.Bits()
	if hostBits < 2 {
		return nil, fmt.Errorf("service CIDR %q is too small", s)
	}
	size := int64(1)<<min(hostBits, 62) - 2
	if size > 1<<20 {
		size = 1 << 20 // upstream caps large ranges too
	}
	return &IPRange{prefix: p, base: new(big.Int).SetBytes(p.Addr().AsSlice()), size: size}, nil
}

// Size implements Range.
func (r *IPRange) Size() int64 { return r.size }

// Value implements Range: offset 0 is network+1.
func (r *IPRange) Value(off int64) string {
	n := new(big.Int).Add(r.base, big.NewInt(off+1))
	b := n.FillBytes(make([]byte, r.prefix.Addr().BitLen()/8))
	a, _ := netip.AddrFromSlice(b)
	return a.String()
}

// Offset implements Range.
func (r *IPRange) Offset(v string) (int64, bool) {
	a, err := netip.ParseAddr(v)
	if err != nil || !r.prefix.Contains(a) {
		return 0, false
	}
	off := new(big.Int).Sub(new(big.Int).SetBytes(a.AsSlice()), r.base).Int64() - 1
	if off < 0 || off >= r.size {
		return 0, false
	}
	return off, true
}

func (r *IPRange) String() string { return r.prefix.String() }
