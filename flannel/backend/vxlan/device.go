package vxlan

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// device describes the flannel.<VNI> link flanneld wants.
type device struct {
	name    string
	vni     int
	port    int
	gbp     bool
	local   netip.Addr // public IP, the VTEP's source address
	parent  int        // index of the public interface
	mtu     int
	mac     net.HardwareAddr
	address netip.Prefix // the subnet's .0/32
}

// StableMAC derives the VTEP MAC from the node name and VNI, so a restart or
// a recreated device keeps the MAC every peer has in its FDB.
func StableMAC(nodeName string, vni int) net.HardwareAddr {
	sum := sha256.Sum256([]byte(fmt.Sprintf("hoist-flannel %s %d", nodeName, vni)))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = (mac[0] | 0x02) &^ 0x01 // locally administered, unicast
	return mac
}

// ensure creates the device or brings an existing one in line, writing only
// what differs. It reports whether anything was changed.
func (d device) ensure() (netlink.Link, bool, error) {
	link, err := netlink.LinkByName(d.name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		link, err = d.create()
		return link, true, err
	case err != nil:
		return nil, false, fmt.Errorf("look up %s: %w", d.name, err)
	}
	vx, ok := link.(*netlink.Vxlan)
	if !ok || vx.VxlanId != d.vni || vx.Port != d.port || vx.GBP != d.gbp || vx.Learning || vx.VtepDevIndex != d.parent ||
		!vx.SrcAddr.Equal(d.local.AsSlice()) {
		// Incompatible (other VNI, the public IP changed, …): only a new device fits.
		if err := netlink.LinkDel(link); err != nil {
			return nil, false, fmt.Errorf("replace %s: %w", d.name, err)
		}
		link, err = d.create()
		return link, true, err
	}
	changed := false
	if vx.MTU != d.mtu {
		if err := netlink.LinkSetMTU(link, d.mtu); err != nil {
			return nil, false, fmt.Errorf("set %s mtu %d: %w", d.name, d.mtu, err)
		}
		changed = true
	}
	if vx.HardwareAddr.String() != d.mac.String() {
		if err := netlink.LinkSetHardwareAddr(link, d.mac); err != nil {
			return nil, false, fmt.Errorf("set %s address: %w", d.name, err)
		}
		changed = true
	}
	a, err := d.ensureUp(link)
	return link, changed || a, err
}

func (d device) create() (netlink.Link, error) {
	vx := &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: d.name, MTU: d.mtu, HardwareAddr: d.mac},
		VxlanId:      d.vni,
		VtepDevIndex: d.parent,
		SrcAddr:      d.local.AsSlice(),
		Port:         d.port,
		Learning:     false,
		GBP:          d.gbp,
	}
	if err := netlink.LinkAdd(vx); err != nil {
		return nil, fmt.Errorf("create vxlan device %s (VNI %d, port %d): %w", d.name, d.vni, d.port, err)
	}
	link, err := netlink.LinkByName(d.name)
	if err != nil {
		return nil, err
	}
	_, err = d.ensureUp(link)
	return link, err
}

// ensureUp gives the device exactly its /32 address and sets it up.
func (d device) ensureUp(link netlink.Link) (bool, error) {
	changed := false
	if d.address.IsValid() {
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
		if err != nil {
			return false, fmt.Errorf("list %s addresses: %w", d.name, err)
		}
		have := false
		for _, a := range addrs {
			p, _ := netip.AddrFromSlice(a.IP.To4())
			ones, _ := a.Mask.Size()
			if p == d.address.Addr() && ones == d.address.Bits() {
				have = true
				continue
			}
			if err := netlink.AddrDel(link, &a); err != nil { // a stale subnet's address
				return false, fmt.Errorf("remove %s from %s: %w", a.IPNet, d.name, err)
			}
			changed = true
		}
		if !have {
			addr := &netlink.Addr{IPNet: &net.IPNet{IP: d.address.Addr().AsSlice(), Mask: net.CIDRMask(d.address.Bits(), 32)}}
			if err := netlink.AddrAdd(link, addr); err != nil {
				return false, fmt.Errorf("add %s to %s: %w", d.address, d.name, err)
			}
			changed = true
		}
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(link); err != nil {
			return false, fmt.Errorf("set %s up: %w", d.name, err)
		}
		changed = true
	}
	return changed, nil
}
