// Package ipam is hoist's host-local IP address management: configuration,
// a lease store (on disk with flock, or any Store), and an allocator that
// hands out one address per range set to each container+ifname, releases
// them, garbage-collects leases of vanished containers and reports pool usage.
// The host-local plugin binary and the bridge plugin (in-process) both use it.
package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/hoist-project/hoist/internal/cni/cnierr"
)

// LockTimeout bounds the wait for the lease lock before ADD reports "try again later".
const LockTimeout = 30 * time.Second

// Allocator allocates addresses of one network's ranges from a Store.
type Allocator struct {
	Config *Config
	Store  Store
	// BootID identifies the running kernel boot; leases from other boots are reusable.
	BootID string
}

// ErrExhausted is wrapped by the error of an ADD that found no free address.
var ErrExhausted = errors.New("no free address")

// Open builds an Allocator over the disk store named by the config.
func Open(conf *Config, network string) (*Allocator, error) {
	st, err := NewDiskStore(conf.DataDir, network)
	if err != nil {
		return nil, cnierr.InvalidConfig("ipam: %v", err)
	}
	return &Allocator{Config: conf, Store: st, BootID: CurrentBootID()}, nil
}

// CurrentBootID reads the kernel's random boot ID ("" if unavailable).
func CurrentBootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (a *Allocator) lock(ctx context.Context) (func(), error) {
	ctx, cancel := context.WithTimeout(ctx, LockTimeout)
	defer cancel()
	unlock, err := a.Store.Lock(ctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, cnierr.TryAgain("ipam: lease lock busy for %s: %v", LockTimeout, err)
		}
		return nil, cnierr.Internal("ipam lock", err)
	}
	return unlock, nil
}

// Allocate reserves one address per range set for id+ifname and returns the
// IPAM result. An owner that already holds a lease in a set keeps it, so a
// retried ADD is idempotent. On failure nothing stays reserved.
func (a *Allocator) Allocate(ctx context.Context, id, ifname string) (*current.Result, error) {
	unlock, err := a.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	leases, err := a.Store.Leases()
	if err != nil {
		return nil, cnierr.Internal("ipam: read leases", err)
	}
	res := &current.Result{CNIVersion: current.ImplementedSpecVersion, Routes: a.Config.Routes}
	var made []net.IP
	for i, set := range a.Config.Ranges {
		ipc, fresh, err := a.allocateInSet(i, set, leases, id, ifname)
		if err != nil {
			for _, ip := range made {
				_ = a.Store.Release(ip)
			}
			return nil, err
		}
		if fresh {
			made = append(made, ipc.Address.IP)
		}
		res.IPs = append(res.IPs, ipc)
	}
	return res, nil
}

func (a *Allocator) allocateInSet(idx int, set RangeSet, leases []Lease, id, ifname string) (*current.IPConfig, bool, error) {
	used := make(map[string]Lease, len(leases))
	for _, l := range leases {
		r := findRange(set, l.IP)
		if r == nil {
			continue
		}
		if l.ContainerID == id && l.IfName == ifname {
			return ipConfig(r, l.IP), false, nil
		}
		used[l.IP.String()] = l
	}
	// Round-robin from the address after the last one handed out, so a
	// just-released address is not reused at once.
	start := a.Store.LastReserved(idx)
	ri, ip := 0, set[0].RangeStart
	if start != nil {
		for i := range set {
			if set[i].Contains(start) {
				ri, ip = i, start
				ip = a.next(set, &ri, ip)
				break
			}
		}
	}
	first, firstRange := ip, ri
	for {
		r := &set[ri]
		if !ip.Equal(r.Gateway) {
			l, taken := used[ip.String()]
			if taken && l.BootID != "" && a.BootID != "" && l.BootID != a.BootID {
				// Made before the last boot: its container cannot exist any more.
				if err := a.Store.Release(ip); err != nil {
					return nil, false, cnierr.Internal("ipam: reclaim stale lease", err)
				}
				taken = false
			}
			if !taken {
				ok, err := a.Store.Reserve(Lease{IP: ip, ContainerID: id, IfName: ifname, BootID: a.BootID})
				if err != nil {
					return nil, false, cnierr.Internal("ipam: reserve", err)
				}
				if ok {
					if err := a.Store.SetLastReserved(idx, ip); err != nil {
						_ = a.Store.Release(ip)
						return nil, false, cnierr.Internal("ipam: record last reserved", err)
					}
					return ipConfig(r, ip), true, nil
				}
			}
		}
		ip = a.next(set, &ri, ip)
		if ri == firstRange && ip.Equal(first) {
			names := make([]string, len(set))
			for i := range set {
				names[i] = set[i].String()
			}
			return nil, false, types.NewError(types.ErrInternal,
				fmt.Sprintf("ipam: %v in range set %d [%s] for container %s: release leases (GC) or widen the range", ErrExhausted, idx, strings.Join(names, ", "), id), "")
		}
	}
}

// next steps to the following address, moving to the next range (wrapping).
func (a *Allocator) next(set RangeSet, ri *int, ip net.IP) net.IP {
	if cmpIP(ip, set[*ri].RangeEnd) >= 0 {
		*ri = (*ri + 1) % len(set)
		return set[*ri].RangeStart
	}
	return nextIP(ip)
}

func findRange(set RangeSet, ip net.IP) *Range {
	for i := range set {
		if set[i].Contains(ip) {
			return &set[i]
		}
	}
	return nil
}

func ipConfig(r *Range, ip net.IP) *current.IPConfig {
	sn := net.IPNet(r.Subnet)
	return &current.IPConfig{Address: net.IPNet{IP: ip, Mask: sn.Mask}, Gateway: r.Gateway}
}

// Release frees every lease of id+ifname; none existing is not an error.
func (a *Allocator) Release(ctx context.Context, id, ifname string) error {
	unlock, err := a.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	leases, err := a.Store.Leases()
	if err != nil {
		return cnierr.Internal("ipam: read leases", err)
	}
	var errs []error
	for _, l := range leases {
		if l.ContainerID == id && l.IfName == ifname {
			errs = append(errs, a.Store.Release(l.IP))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return cnierr.Internal("ipam: release", err)
	}
	return nil
}

// Check verifies that id+ifname holds a lease in every range set.
func (a *Allocator) Check(ctx context.Context, id, ifname string) error {
	leases, err := a.Store.Leases()
	if err != nil {
		return cnierr.Internal("ipam: read leases", err)
	}
	for i, set := range a.Config.Ranges {
		found := false
		for _, l := range leases {
			found = found || (l.ContainerID == id && l.IfName == ifname && findRange(set, l.IP) != nil)
		}
		if !found {
			return types.NewError(types.ErrUnknownContainer, fmt.Sprintf("ipam: container %s/%s holds no lease in range set %d", id, ifname, i), "")
		}
	}
	return nil
}

// Attachment names one container interface the runtime still has.
type Attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifname"`
}

// AttachmentSet is the set of attachments a GC must keep.
type AttachmentSet map[Attachment]bool

// Has reports whether the attachment of containerID on ifName is kept.
func (s AttachmentSet) Has(containerID, ifName string) bool {
	return s[Attachment{ContainerID: containerID, IfName: ifName}]
}

// DecodeValidAttachments reads "cni.dev/valid-attachments" from a GC config.
func DecodeValidAttachments(stdin []byte) (AttachmentSet, error) {
	var conf struct {
		Valid []Attachment `json:"cni.dev/valid-attachments"`
	}
	if err := json.Unmarshal(stdin, &conf); err != nil {
		return nil, cnierr.Decoding(err)
	}
	set := make(AttachmentSet, len(conf.Valid))
	for _, v := range conf.Valid {
		set[v] = true
	}
	return set, nil
}

// GC releases every lease whose owner is not in valid and returns the freed addresses.
func (a *Allocator) GC(ctx context.Context, keep AttachmentSet) ([]net.IP, error) {
	unlock, err := a.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	leases, err := a.Store.Leases()
	if err != nil {
		return nil, cnierr.Internal("ipam: read leases", err)
	}
	var freed []net.IP
	for _, l := range leases {
		if keep[Attachment{l.ContainerID, l.IfName}] || !a.inConfig(l.IP) {
			continue
		}
		if err := a.Store.Release(l.IP); err != nil {
			return freed, cnierr.Internal("ipam: gc release", err)
		}
		freed = append(freed, l.IP)
	}
	return freed, nil
}

func (a *Allocator) inConfig(ip net.IP) bool {
	for _, set := range a.Config.Ranges {
		if findRange(set, ip) != nil {
			return true
		}
	}
	return false
}

// RangeUsage is the fill level of one range, for metrics and STATUS.
type RangeUsage struct {
	Range string `json:"range"`
	Size  uint64 `json:"size"`
	Used  uint64 `json:"used"`
	// Stale counts leases from an earlier boot (reusable on demand).
	Stale uint64 `json:"stale"`
}

// Usage reports how full each range is. It reads without the lock: a
// snapshot that is at most one allocation off is fine for metrics.
func (a *Allocator) Usage() ([]RangeUsage, error) {
	leases, err := a.Store.Leases()
	if err != nil {
		return nil, err
	}
	var out []RangeUsage
	for _, set := range a.Config.Ranges {
		for i := range set {
			r := &set[i]
			u := RangeUsage{Range: r.String(), Size: r.Size()}
			for _, l := range leases {
				if r.Contains(l.IP) && !l.IP.Equal(r.Gateway) {
					u.Used++
					if l.BootID != "" && a.BootID != "" && l.BootID != a.BootID {
						u.Stale++
					}
				}
			}
			out = append(out, u)
		}
	}
	return out, nil
}

// Status returns a code-50 error when some range set has no free address.
func (a *Allocator) Status() error {
	usage, err := a.Usage()
	if err != nil {
		return cnierr.Internal("ipam: read leases", err)
	}
	k := 0
	for i, set := range a.Config.Ranges {
		free := uint64(0)
		for range set {
			free += usage[k].Size - usage[k].Used + usage[k].Stale
			k++
		}
		if free == 0 {
			return cnierr.Unavailable("ipam: range set %d is exhausted (%d leases); GC or widen the range", i, usage[k-1].Used)
		}
	}
	return nil
}
