// Package vxlan is the VXLAN backend: a flannel.<VNI> device (learning off,
// MTU of the public interface minus 50) and, per remote node, a static FDB
// entry (VTEP MAC → public IP), a neighbour entry (subnet .0 → VTEP MAC) and
// an onlink route to the remote subnet via its .0. With DirectRouting, peers
// on the same L2 get a plain route via their public IP instead.
package vxlan

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hoist-project/hoist/flannel/backend"
	"github.com/hoist-project/hoist/flannel/config"
	"github.com/hoist-project/hoist/flannel/reconcile"
	"github.com/hoist-project/hoist/flannel/subnet"
)

// Overhead is what VXLAN encapsulation adds to each packet (IPv4 outer header).
const Overhead = 50

// Data is the lease's BackendData, as upstream writes it.
type Data struct {
	VNI     int    `json:"VNI"`
	VtepMAC string `json:"VtepMAC"`
}

// Backend is the VXLAN backend.
type Backend struct{ env backend.Env }

// New returns the VXLAN backend.
func New(env backend.Env) *Backend { return &Backend{env: env} }

// RegisterNetwork implements backend.Backend: the device first (its MAC is
// part of the lease), then the lease, then the device's subnet address.
func (b *Backend) RegisterNetwork(ctx context.Context, cfg config.Config) (backend.Network, error) {
	mtu := b.env.IfaceMTU - Overhead
	if cfg.MTU != 0 {
		mtu = cfg.MTU
	}
	dev := device{
		name: fmt.Sprintf("flannel.%d", cfg.Backend.VNI), vni: cfg.Backend.VNI, port: cfg.Backend.Port, gbp: cfg.Backend.GBP,
		local: b.env.PublicIP, parent: b.env.IfaceIndex, mtu: mtu, mac: StableMAC(b.env.NodeName, cfg.Backend.VNI),
	}
	if _, _, err := dev.ensure(); err != nil {
		return nil, err
	}
	data, _ := json.Marshal(Data{VNI: cfg.Backend.VNI, VtepMAC: dev.mac.String()})
	attrs := subnet.Attrs{PublicIP: b.env.PublicIP, BackendType: config.VXLAN, BackendData: data, NodeName: b.env.NodeName}
	l, err := b.env.AcquireLease(ctx, attrs)
	if err != nil {
		return nil, err
	}
	dev.address = netip.PrefixFrom(l.Subnet.Addr(), 32)
	if _, _, err := dev.ensure(); err != nil {
		return nil, err
	}
	return &network{env: b.env, cfg: cfg, lease: l, dev: dev}, nil
}

type network struct {
	env   backend.Env
	cfg   config.Config
	lease *subnet.Lease
	dev   device
}

func (n *network) Lease() *subnet.Lease { return n.lease }
func (n *network) MTU() int             { return n.dev.mtu }

// Run watches leases and the device: a deleted device is recreated at once.
func (n *network) Run(ctx context.Context) error {
	updates := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	defer close(done)
	if err := netlink.LinkSubscribe(updates, done); err != nil {
		return fmt.Errorf("subscribe to link events: %w", err)
	}
	kick := make(chan struct{}, 1)
	go func() {
		for u := range updates {
			if u.Attrs().Name == n.dev.name && (u.Header.Type == unix.RTM_DELLINK || u.Attrs().Flags&net.FlagUp == 0) {
				select {
				case kick <- struct{}{}:
				default:
				}
			}
		}
	}()
	return backend.RunLoop(ctx, n.env, n.lease.Subnet, config.VXLAN, kick, n.sync)
}

// fdbEntry and neighEntry are comparable kernel entries for reconcile.
type fdbEntry struct {
	MAC string
	Dst netip.Addr
}

type neighEntry struct {
	IP  netip.Addr
	MAC string
}

// desired computes every owned entry for peers.
func (n *network) desired(peers []subnet.Lease, link int) (map[string]fdbEntry, map[netip.Addr]neighEntry, map[netip.Prefix]backend.Route, []error) {
	fdb, neigh, routes := map[string]fdbEntry{}, map[netip.Addr]neighEntry{}, map[netip.Prefix]backend.Route{}
	var errs []error
	for _, p := range peers {
		if n.cfg.Backend.DirectRouting {
			if parent, direct, err := backend.Connected(p.Attrs.PublicIP); err == nil && direct {
				routes[p.Subnet] = backend.Route{Dst: p.Subnet, Gw: p.Attrs.PublicIP, Link: parent}
				continue
			}
		}
		var d Data
		if err := json.Unmarshal(p.Attrs.BackendData, &d); err != nil || d.VtepMAC == "" {
			errs = append(errs, fmt.Errorf("peer %s (subnet %s): lease has no usable VXLAN BackendData %s", p.Attrs.PublicIP, p.Subnet, p.Attrs.BackendData))
			continue
		}
		mac, err := net.ParseMAC(d.VtepMAC)
		if err != nil {
			errs = append(errs, fmt.Errorf("peer %s: VtepMAC %q: %v", p.Attrs.PublicIP, d.VtepMAC, err))
			continue
		}
		gw := p.Subnet.Addr()
		fdb[mac.String()] = fdbEntry{MAC: mac.String(), Dst: p.Attrs.PublicIP}
		neigh[gw] = neighEntry{IP: gw, MAC: mac.String()}
		routes[p.Subnet] = backend.Route{Dst: p.Subnet, Gw: gw, Link: link, Onlink: true}
	}
	return fdb, neigh, routes, errs
}

// sync repairs the device, then FDB and neighbour entries, then routes.
// Every step compares first, so a sync with nothing changed writes nothing.
func (n *network) sync(_ context.Context, peers []subnet.Lease, why backend.Reason) error {
	link, changed, err := n.dev.ensure()
	if err != nil {
		return err
	}
	if changed {
		n.env.Count("device", why, 1, 0)
	}
	idx := link.Attrs().Index
	wantFDB, wantNeigh, wantRoutes, errs := n.desired(peers, idx)
	for _, e := range errs {
		n.env.Metrics.BackendErrors.WithLabelValues("bad-peer").Inc()
		n.env.Log.Error("skipping peer", "err", e)
	}
	haveFDB, haveNeigh, err := listNeigh(idx)
	if err != nil {
		return err
	}
	haveRoutes, err := backend.OwnedRoutes()
	if err != nil {
		return err
	}
	fdbPlan, neighPlan, routePlan := reconcile.Diff(wantFDB, haveFDB), reconcile.Diff(wantNeigh, haveNeigh), reconcile.Diff(wantRoutes, haveRoutes)
	// Entries first so a new route never points at an unresolved next hop;
	// routes go before their entries on removal for the same reason.
	for _, e := range fdbPlan.Upsert {
		if err := netlink.NeighSet(fdbNeigh(idx, e)); err != nil {
			return fmt.Errorf("fdb %s dst %s: %w", e.MAC, e.Dst, err)
		}
	}
	for _, e := range neighPlan.Upsert {
		if err := netlink.NeighSet(ipNeigh(idx, e)); err != nil {
			return fmt.Errorf("neighbour %s lladdr %s: %w", e.IP, e.MAC, err)
		}
	}
	if err := backend.ApplyRoutes(routePlan); err != nil {
		return err
	}
	for _, e := range neighPlan.Delete {
		if err := netlink.NeighDel(ipNeigh(idx, e)); err != nil && !backend.IsNotFound(err) {
			return fmt.Errorf("delete neighbour %s: %w", e.IP, err)
		}
	}
	for _, e := range fdbPlan.Delete {
		if err := netlink.NeighDel(fdbNeigh(idx, e)); err != nil && !backend.IsNotFound(err) {
			return fmt.Errorf("delete fdb %s: %w", e.MAC, err)
		}
	}
	n.env.Count("fdb", why, len(fdbPlan.Upsert), len(fdbPlan.Delete))
	n.env.Count("neigh", why, len(neighPlan.Upsert), len(neighPlan.Delete))
	n.env.Count("route", why, len(routePlan.Upsert), len(routePlan.Delete))
	return nil
}

// listNeigh reads the permanent FDB and neighbour entries on the device.
func listNeigh(idx int) (map[string]fdbEntry, map[netip.Addr]neighEntry, error) {
	fdb, neigh := map[string]fdbEntry{}, map[netip.Addr]neighEntry{}
	fl, err := netlink.NeighList(idx, unix.AF_BRIDGE)
	if err != nil {
		return nil, nil, fmt.Errorf("list fdb: %w", err)
	}
	for _, e := range fl {
		if e.State&netlink.NUD_PERMANENT == 0 || len(e.HardwareAddr) == 0 {
			continue
		}
		dst, _ := netip.AddrFromSlice(e.IP.To4())
		fdb[e.HardwareAddr.String()] = fdbEntry{MAC: e.HardwareAddr.String(), Dst: dst}
	}
	nl, err := netlink.NeighList(idx, unix.AF_INET)
	if err != nil {
		return nil, nil, fmt.Errorf("list neighbours: %w", err)
	}
	for _, e := range nl {
		if e.State&netlink.NUD_PERMANENT == 0 {
			continue
		}
		ip, _ := netip.AddrFromSlice(e.IP.To4())
		neigh[ip] = neighEntry{IP: ip, MAC: e.HardwareAddr.String()}
	}
	return fdb, neigh, nil
}

func fdbNeigh(idx int, e fdbEntry) *netlink.Neigh {
	mac, _ := net.ParseMAC(e.MAC)
	return &netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT, Flags: netlink.NTF_SELF,
		IP: e.Dst.AsSlice(), HardwareAddr: mac}
}

func ipNeigh(idx int, e neighEntry) *netlink.Neigh {
	mac, _ := net.ParseMAC(e.MAC)
	return &netlink.Neigh{LinkIndex: idx, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, Type: unix.RTN_UNICAST,
		IP: e.IP.AsSlice(), HardwareAddr: mac}
}
