package ipam

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Lease is one reserved address and its owner.
type Lease struct {
	IP          net.IP
	ContainerID string
	IfName      string
	// BootID is the kernel boot the lease was made in ("" for leases written
	// by upstream host-local); a lease from another boot cannot back a live
	// interface, so the allocator may reuse its address.
	BootID string
}

// Store persists leases. Callers hold Lock around every read-modify-write.
type Store interface {
	// Lock takes the store's exclusive lock, waiting until ctx is done.
	Lock(ctx context.Context) (unlock func(), err error)
	Leases() ([]Lease, error)
	// Reserve records l unless its IP is taken; false means taken.
	Reserve(l Lease) (bool, error)
	Release(ip net.IP) error
	LastReserved(rangeSet int) net.IP
	SetLastReserved(rangeSet int, ip net.IP) error
}

// DiskStore keeps one file per lease under <dataDir>/<network>/, named by the
// address (upstream host-local's layout), and serializes processes with flock.
type DiskStore struct{ dir string }

// NewDiskStore opens (creating if needed) the lease directory of a network.
func NewDiskStore(dataDir, network string) (*DiskStore, error) {
	if network == "" || strings.ContainsAny(network, "/\x00") || network == "." || network == ".." {
		return nil, fmt.Errorf("network name %q cannot be used as a lease directory name", network)
	}
	dir := filepath.Join(dataDir, network)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create lease directory: %w", err)
	}
	return &DiskStore{dir: dir}, nil
}

// Dir is the lease directory.
func (s *DiskStore) Dir() string { return s.dir }

// Lock takes an exclusive flock on <dir>/lock. flock blocks in the kernel, so
// it runs in a goroutine; if ctx ends first and the lock arrives later, it is
// released at once so a long-lived caller never keeps a stray lock.
func (s *DiskStore) Lock(ctx context.Context) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lease lock: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- unix.Flock(int(f.Fd()), unix.LOCK_EX) }()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		return func() { f.Close() }, nil // closing drops the flock
	case <-ctx.Done():
		go func() { <-done; f.Close() }()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), ctx.Err())
	}
}

// Leases reads every lease file.
func (s *DiskStore) Leases() ([]Lease, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []Lease
	for _, e := range entries {
		ip := net.ParseIP(e.Name())
		if ip == nil || e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, parseLease(ip, string(data)))
	}
	return out, nil
}

// parseLease reads "id\r\nifname" (upstream) with an optional third line, the boot ID.
func parseLease(ip net.IP, data string) Lease {
	lines := strings.Split(strings.ReplaceAll(strings.TrimSpace(data), "\r\n", "\n"), "\n")
	l := Lease{IP: normIP(ip), ContainerID: strings.TrimSpace(lines[0])}
	if len(lines) > 1 {
		l.IfName = strings.TrimSpace(lines[1])
	}
	if len(lines) > 2 {
		l.BootID = strings.TrimSpace(lines[2])
	}
	return l
}

// Reserve creates the lease file exclusively, so two processes can never both win one address.
func (s *DiskStore) Reserve(l Lease) (bool, error) {
	p := filepath.Join(s.dir, normIP(l.IP).String())
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create lease %s: %w", p, err)
	}
	_, werr := fmt.Fprintf(f, "%s\r\n%s\r\n%s", l.ContainerID, l.IfName, l.BootID)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(p)
		return false, fmt.Errorf("write lease %s: %w", p, werr)
	}
	return true, nil
}

// Release removes a lease; a missing one is not an error.
func (s *DiskStore) Release(ip net.IP) error {
	err := os.Remove(filepath.Join(s.dir, normIP(ip).String()))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

func (s *DiskStore) lastPath(set int) string {
	return filepath.Join(s.dir, "last_reserved_ip."+strconv.Itoa(set))
}

// LastReserved returns the last address handed out in a range set, or nil.
func (s *DiskStore) LastReserved(set int) net.IP {
	data, err := os.ReadFile(s.lastPath(set))
	if err != nil {
		return nil
	}
	return normIP(net.ParseIP(strings.TrimSpace(string(data))))
}

// SetLastReserved records where the next allocation in a set starts looking.
func (s *DiskStore) SetLastReserved(set int, ip net.IP) error {
	tmp := s.lastPath(set) + ".tmp"
	if err := os.WriteFile(tmp, []byte(ip.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.lastPath(set))
}

func normIP(ip net.IP) net.IP {
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip
}
