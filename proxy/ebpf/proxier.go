package ebpf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/proxy/changes"
	"github.com/hoist-project/hoist/proxy/conntrack"
	"github.com/hoist-project/hoist/proxy/healthcheck"
)

// Config configures the eBPF data path of one node.
type Config struct {
	// PinDir is a bpffs directory (mounted if it is not one); maps and
	// links live under PinDir/proxy. Default DefaultPinDir.
	PinDir string
	// Cgroup is the cgroup v2 directory the socket programs attach to.
	// Default: the root of the cgroup v2 mount, covering pods and host.
	Cgroup string
	// Interfaces get the tc programs for NodePorts reached from outside.
	// nil: every non-loopback interface with an IPv4 address.
	Interfaces []string
	// NodePortAddresses serve NodePorts; empty: the IPv4 addresses of
	// Interfaces, read at every sync.
	NodePortAddresses  []netip.Addr
	LocalhostNodePorts bool
	// NetnsPath is the network namespace of Interfaces ("" this one); the
	// socket programs act on processes of Cgroup in any namespace.
	NetnsPath string
	// Log gets the errors of the interface watch. Default slog.Default().
	Log *slog.Logger
}

// Proxier is the eBPF data path: programs attached through pinned links,
// maps pinned by name. Closing it leaves both in place, so traffic keeps
// flowing while the proxy restarts; a new Proxier takes them over.
type Proxier struct {
	// mu serializes Sync with the interface watch (watch.go), which
	// attaches to new interfaces and re-renders on address changes.
	mu      sync.Mutex
	cfg     Config
	dir     string
	objs    proxyObjects
	ids     *IDs
	applier *Applier
	metrics *healthcheck.Metrics // may be nil
	last    ApplyStats
	links   LinkStats
	// natPruned is when expired SNAT entries were last deleted: a walk
	// of a full map costs syscalls per entry, so not on every sync.
	natPruned time.Time
	// state and nodeAddrs are the last synced state and the node
	// addresses it was rendered with (state nil before the first sync).
	state     *changes.State
	nodeAddrs []netip.Addr
	watch     *linkWatch
}

// LinkStats counts how the last attach reached its links.
type LinkStats struct {
	Updated  int // a pinned link got this process's program (atomic)
	Attached int // a new link was attached and pinned
}

// NewProxier checks the kernel, loads the programs (reusing pinned maps),
// attaches them (atomically replacing the programs of pinned links) and
// adopts the service IDs in the maps, so an unchanged state writes nothing.
func NewProxier(cfg Config, m *healthcheck.Metrics) (*Proxier, error) {
	if cfg.PinDir == "" {
		cfg.PinDir = DefaultPinDir
	}
	if cfg.Cgroup == "" {
		root, err := CgroupV2Root()
		if err != nil {
			return nil, err
		}
		cfg.Cgroup = root
	}
	if err := CheckKernel(); err != nil {
		return nil, err
	}
	if err := EnsureBPFFS(cfg.PinDir); err != nil {
		return nil, err
	}
	p := &Proxier{cfg: cfg, dir: filepath.Join(cfg.PinDir, "proxy"), ids: NewIDs(), metrics: m}
	if err := os.MkdirAll(filepath.Join(p.dir, "links"), 0o700); err != nil {
		return nil, fmt.Errorf("ebpf: %w", err)
	}
	if err := loadProxyObjects(&p.objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: p.dir}}); err != nil {
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("ebpf: pinned maps in %s have another layout (left by a different hoist version); remove the directory (service traffic is not translated until the next sync): %w", p.dir, err)
		}
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("ebpf: the kernel's verifier rejected the programs: %+v", ve)
		}
		return nil, fmt.Errorf("ebpf: load programs: %w", err)
	}
	p.applier = NewApplier(p.objs.HoistServices, p.objs.HoistBackends)
	cur, err := p.applier.Current()
	if err != nil {
		p.objs.Close()
		return nil, err
	}
	p.ids.Adopt(cur.Services)
	if err := p.attach(); err != nil {
		p.objs.Close()
		return nil, err
	}
	if p.watch, err = p.startWatch(); err != nil {
		p.objs.Close()
		return nil, err
	}
	return p, nil
}

// Sync renders st and writes the differences into the maps; a full sync
// re-reads the maps and re-attaches every program first, repairing what
// others changed and covering interfaces that appeared.
func (p *Proxier) Sync(_ context.Context, st changes.State, full bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if full {
		p.applier.Forget()
		if err := p.attach(); err != nil {
			return err
		}
	}
	addrs := p.cfg.NodePortAddresses
	if len(addrs) == 0 {
		var err error
		if _, addrs, err = p.interfaces(); err != nil {
			return err
		}
	}
	m, stats, err := p.apply(st, addrs)
	p.last = stats
	if err != nil {
		return err
	}
	pruned, err := p.pruneUDPFlows(conntrack.AllowedFrom(st))
	if p.metrics != nil {
		p.metrics.ConntrackCleanups.Add(float64(pruned))
	}
	if err != nil {
		return err
	}
	if full || time.Since(p.natPruned) >= natPruneInterval {
		nat, err := p.pruneNAT()
		if err != nil {
			return err
		}
		p.natPruned = time.Now()
		if p.metrics != nil {
			p.metrics.MapEntries.WithLabelValues("nodeport_snat").Set(float64(nat))
		}
	}
	if p.metrics != nil {
		p.metrics.MapEntries.WithLabelValues("services").Set(float64(len(m.Services)))
		p.metrics.MapEntries.WithLabelValues("backends").Set(float64(len(m.Backends)))
	}
	return nil
}

// apply renders st for the node addresses addrs and writes the differences.
func (p *Proxier) apply(st changes.State, addrs []netip.Addr) (Maps, ApplyStats, error) {
	m := Render(st, p.ids, Options{NodeAddresses: addrs, LocalhostNodePorts: p.cfg.LocalhostNodePorts})
	stats, err := p.applier.Apply(m)
	if err == nil {
		p.state, p.nodeAddrs = &st, addrs
	}
	return m, stats, err
}

// pruneUDPFlows deletes the tc NodePort UDP flows whose backend no longer
// serves their service (or whose service is gone): UDP has no end, so a
// client that keeps sending would stay on it. Like the iptables mode's
// conntrack reconciler it compares with the current state every sync.
// TCP flows keep their backend until they end (LRU eviction).
func (p *Proxier) pruneUDPFlows(allowed conntrack.Allowed) (int, error) {
	var stale []FlowKey
	var k FlowKey
	var v FlowValue
	it := p.objs.HoistNpFlows.Iterate()
	for it.Next(&k, &v) {
		if k.Proto != 17 {
			continue
		}
		dst := netip.AddrPortFrom(addr(k.Ip), hostPort(k.Port))
		eps, ok := allowed.ByDst[dst]
		if !ok {
			eps = allowed.ByNodePort[dst.Port()]
		}
		if !eps[netip.AddrPortFrom(addr(v.Ip), hostPort(v.Port))] {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("ebpf: read NodePort flows: %w", err)
	}
	for _, k := range stale {
		if err := p.objs.HoistNpFlows.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return 0, fmt.Errorf("ebpf: delete NodePort flow: %w", err)
		}
	}
	return len(stale), nil
}

// Links counts how the last (re)attach reached the links.
func (p *Proxier) Links() LinkStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.links
}

// LastApply counts the map writes of the last sync.
func (p *Proxier) LastApply() ApplyStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// Close stops the interface watch and releases this process's handles;
// pinned maps and links stay.
func (p *Proxier) Close() error {
	p.watch.stop()
	return p.objs.Close()
}

// Cleanup detaches every program and removes the pinned maps: service
// addresses stop being translated.
func (p *Proxier) Cleanup() error {
	p.watch.stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	entries, err := os.ReadDir(filepath.Join(p.dir, "links"))
	if err != nil {
		return fmt.Errorf("ebpf: %w", err)
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, unpin(filepath.Join(p.dir, "links", e.Name())))
	}
	for _, m := range []*ebpf.Map{p.objs.HoistServices, p.objs.HoistBackends, p.objs.HoistAffinity, p.objs.HoistRevnat, p.objs.HoistNpFlows, p.objs.HoistNpRevnat, p.objs.HoistNpSnat} {
		errs = append(errs, m.Unpin())
	}
	errs = append(errs, p.objs.Close(), os.RemoveAll(p.dir))
	return errors.Join(errs...)
}

// attach makes every wanted link exist and run this process's programs,
// and detaches tc links of interfaces no longer wanted.
func (p *Proxier) attach() error {
	p.links = LinkStats{}
	var cgStat unix.Stat_t
	if err := unix.Stat(p.cfg.Cgroup, &cgStat); err != nil {
		return fmt.Errorf("ebpf: cgroup v2 directory %s: %w (set --cgroup-path to a directory of the cgroup2 mount)", p.cfg.Cgroup, err)
	}
	onCgroup := func(i *link.Info) bool { // a cgroup v2 ID is its directory's inode
		return i.Cgroup() != nil && i.Cgroup().CgroupId == cgStat.Ino
	}
	for _, h := range []struct {
		name string
		prog *ebpf.Program
		at   ebpf.AttachType
	}{
		{"cgroup-connect4", p.objs.HoistConnect4, ebpf.AttachCGroupInet4Connect},
		{"cgroup-sendmsg4", p.objs.HoistSendmsg4, ebpf.AttachCGroupUDP4Sendmsg},
		{"cgroup-recvmsg4", p.objs.HoistRecvmsg4, ebpf.AttachCGroupUDP4Recvmsg},
		{"cgroup-getpeername4", p.objs.HoistGetpeername4, ebpf.AttachCgroupInet4GetPeername},
	} {
		err := p.ensureLink(h.name, h.prog, true, onCgroup, func() (link.Link, error) {
			return link.AttachCgroup(link.CgroupOptions{Path: p.cfg.Cgroup, Attach: h.at, Program: h.prog})
		})
		if err != nil {
			return fmt.Errorf("ebpf: attach %s to cgroup %s: %w", h.name, p.cfg.Cgroup, err)
		}
	}
	return p.attachTC(true)
}

// attachTC attaches the NodePort programs to every selected interface
// that lacks them (with update, a pinned link also gets this process's
// programs) and detaches those of interfaces no longer selected.
func (p *Proxier) attachTC(update bool) error {
	links, _, err := p.interfaces()
	if err != nil {
		return err
	}
	wanted := map[string]bool{}
	for _, l := range links {
		for _, h := range []struct {
			dir  string
			prog *ebpf.Program
			at   ebpf.AttachType
		}{
			{"ingress", p.objs.HoistNodeportIngress, ebpf.AttachTCXIngress},
			{"egress", p.objs.HoistNodeportEgress, ebpf.AttachTCXEgress},
		} {
			name := tcxPinName(h.dir, l.Attrs().Name)
			wanted[name] = true
			onLink := func(i *link.Info) bool { return i.TCX() != nil && int(i.TCX().Ifindex) == l.Attrs().Index }
			err := p.ensureLink(name, h.prog, update, onLink, func() (link.Link, error) {
				var lk link.Link
				err := p.inNetns(func() (err error) {
					lk, err = link.AttachTCX(link.TCXOptions{Interface: l.Attrs().Index, Program: h.prog, Attach: h.at})
					return err
				})
				return lk, err
			})
			if err != nil {
				if errors.Is(err, ebpf.ErrNotSupported) {
					return fmt.Errorf("ebpf mode: NodePorts need TCX links (Linux 6.6): %w", err)
				}
				return fmt.Errorf("ebpf: attach tc %s to %s: %w", h.dir, l.Attrs().Name, err)
			}
		}
	}
	entries, err := os.ReadDir(filepath.Join(p.dir, "links"))
	if err != nil {
		return fmt.Errorf("ebpf: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "tcx-") && !wanted[e.Name()] {
			if err := unpin(filepath.Join(p.dir, "links", e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// ensureLink updates the program of the link pinned as name (or, without
// update, leaves it), or attaches and pins a new one when there is none or
// it is not attached where wanted (its interface or cgroup went away, or
// the configuration moved).
func (p *Proxier) ensureLink(name string, prog *ebpf.Program, update bool, attachedAsWanted func(*link.Info) bool, attach func() (link.Link, error)) error {
	path := filepath.Join(p.dir, "links", name)
	if l, err := link.LoadPinnedLink(path, nil); err == nil {
		info, err := l.Info()
		if err == nil && attachedAsWanted(info) {
			if !update {
				l.Close()
				return nil
			}
			err = l.Update(prog)
		} else if err == nil {
			err = errors.New("attached elsewhere")
		}
		l.Close()
		if err == nil {
			p.links.Updated++
			return nil
		}
		if err := unpin(path); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		if err := unpin(path); err != nil {
			return err
		}
	}
	l, err := attach()
	if err != nil {
		return err
	}
	defer l.Close()
	if err := l.Pin(path); err != nil {
		return fmt.Errorf("pin link: %w (the kernel attaches this program type without a bpf_link; it would not survive a restart)", err)
	}
	p.links.Attached++
	return nil
}

// tcxPinName names the pin of the TCX link in direction dir on interface
// ifname. bpffs refuses names with a dot (EPERM, "reserved for future
// use"), and interface names such as flannel.1 or eth0.100 have them, so
// dots become colons: the kernel never allows a colon in an interface
// name, so the mapping stays one to one.
func tcxPinName(dir, ifname string) string {
	return "tcx-" + dir + "-" + strings.ReplaceAll(ifname, ".", ":")
}

// unpin removes a pinned link, detaching it unless someone else holds it.
func unpin(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("ebpf: unpin %s: %w", path, err)
	}
	return nil
}

// interfaces lists the NodePort interfaces and their IPv4 addresses.
func (p *Proxier) interfaces() ([]netlink.Link, []netip.Addr, error) {
	var links []netlink.Link
	var addrs []netip.Addr
	err := p.inNetns(func() error {
		all, err := netlink.LinkList()
		if err != nil {
			return err
		}
		want := map[string]bool{}
		for _, n := range p.cfg.Interfaces {
			want[n] = true
		}
		// One dump of all addresses: AddrList(link) dumps them all per link.
		v4, err := netlink.AddrList(nil, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		byLink := map[int][]netlink.Addr{}
		for _, a := range v4 {
			byLink[a.LinkIndex] = append(byLink[a.LinkIndex], a)
		}
		for _, l := range all {
			name := l.Attrs().Name
			if p.cfg.Interfaces != nil && !want[name] || l.Attrs().Flags&unix.IFF_LOOPBACK != 0 {
				continue
			}
			list := byLink[l.Attrs().Index]
			if len(list) == 0 && p.cfg.Interfaces == nil {
				continue
			}
			links = append(links, l)
			for _, a := range list {
				if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok {
					addrs = append(addrs, ip)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("ebpf: list interfaces: %w", err)
	}
	return links, addrs, nil
}

func (p *Proxier) inNetns(fn func() error) error {
	if p.cfg.NetnsPath == "" {
		return fn()
	}
	return nsutil.Do(p.cfg.NetnsPath, fn)
}
