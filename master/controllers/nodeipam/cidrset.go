package nodeipam

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

// ErrFull means every node subnet of the cluster CIDR is taken.
var ErrFull = errors.New("no free node CIDR left in the cluster CIDR")

// CIDRSet hands out the /size subnets of a cluster CIDR, each to one
// owner (node name) at a time. It is safe for concurrent use.
type CIDRSet struct {
	base    netip.Prefix
	size    int
	count   int
	mu      sync.Mutex
	owners  map[int]string // subnet index -> node
	byOwner map[string]int
	next    int // round-robin start, so a released subnet is reused last
}

// NewCIDRSet splits cluster (IPv4) into subnets of prefix length size.
func NewCIDRSet(cluster string, size int) (*CIDRSet, error) {
	p, err := netip.ParsePrefix(cluster)
	if err != nil {
		return nil, fmt.Errorf("cluster CIDR %q: %w", cluster, err)
	}
	if !p.Addr().Is4() {
		return nil, fmt.Errorf("cluster CIDR %q: only IPv4 is supported", cluster)
	}
	if size < p.Bits() || size > 30 || size-p.Bits() > 20 {
		return nil, fmt.Errorf("node CIDR size /%d does not fit cluster CIDR %s (want /%d../30, at most 2^20 subnets)", size, p, p.Bits())
	}
	return &CIDRSet{base: p.Masked(), size: size, count: 1 << (size - p.Bits()),
		owners: map[int]string{}, byOwner: map[string]int{}}, nil
}

func (s *CIDRSet) subnet(i int) netip.Prefix {
	a := s.base.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(i) << (32 - s.size)
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), s.size)
}

func (s *CIDRSet) index(cidr string) (int, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return 0, fmt.Errorf("node CIDR %q: %w", cidr, err)
	}
	if p.Bits() != s.size || !s.base.Contains(p.Addr()) || p.Masked() != p {
		return 0, fmt.Errorf("node CIDR %s is not a /%d subnet of %s", p, s.size, s.base)
	}
	a, b := p.Addr().As4(), s.base.Addr().As4()
	off := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) - (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]))
	return int(off >> (32 - s.size)), nil
}

// Occupy records that owner already holds cidr (rebuilding state from
// existing Nodes). It fails if another owner holds it.
func (s *CIDRSet) Occupy(cidr, owner string) error {
	i, err := s.index(cidr)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.owners[i]; ok && cur != owner {
		return fmt.Errorf("node CIDR %s is already assigned to node %s", cidr, cur)
	}
	if prev, ok := s.byOwner[owner]; ok && prev != i {
		delete(s.owners, prev)
	}
	s.owners[i] = owner
	s.byOwner[owner] = i
	return nil
}

// Allocate returns owner's subnet, assigning a free one if it has none.
func (s *CIDRSet) Allocate(owner string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.byOwner[owner]; ok {
		return s.subnet(i).String(), nil
	}
	for k := 0; k < s.count; k++ {
		i := (s.next + k) % s.count
		if _, used := s.owners[i]; !used {
			s.owners[i] = owner
			s.byOwner[owner] = i
			s.next = (i + 1) % s.count
			return s.subnet(i).String(), nil
		}
	}
	return "", fmt.Errorf("%w (%s split into %d /%d subnets)", ErrFull, s.base, s.count, s.size)
}

// Release frees owner's subnet, if any.
func (s *CIDRSet) Release(owner string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.byOwner[owner]; ok {
		delete(s.owners, i)
		delete(s.byOwner, owner)
	}
}

// Used returns how many subnets are assigned and how many exist.
func (s *CIDRSet) Used() (used, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.owners), s.count
}
