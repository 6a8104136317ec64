package bridge

import (
	"bytes"
	"fmt"
	"net"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/hoist-project/hoist/internal/cni/plugintest"
	"github.com/hoist-project/hoist/internal/testenv"
)

// port adds a veth pair in the current namespace whose bridge end has mac
// and attaches it to br; the returned link is that end.
func port(br netlink.Link, mac string) (netlink.Link, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return nil, err
	}
	la := netlink.NewLinkAttrs()
	la.Name, la.HardwareAddr = testenv.UniqueName("hstp"), hw
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: testenv.UniqueName("hstq")}); err != nil {
		return nil, err
	}
	l, err := netlink.LinkByName(la.Name)
	if err != nil {
		return nil, err
	}
	return l, attachHost(l, br, &NetConf{})
}

// macOf reads a link's MAC ("" if it cannot be read: the comparison fails).
func macOf(name string) string {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return "error: " + err.Error()
	}
	return l.Attrs().HardwareAddr.String()
}

// The bridge's MAC must not follow its lowest port: pods cache it as their
// gateway's, and a change makes the kernel flush the bridge's neighbours.
func TestIntegrationBridgeMACStable(t *testing.T) {
	testenv.RequireRoot(t)
	ns := plugintest.NewNetns(t, "hst-h")
	want := stableMAC(macKey("hst-br0", []net.IP{net.ParseIP("10.96.0.1")}))
	plugintest.InNS(t, ns, func() error {
		// Control: a bridge created without a MAC takes its lowest port's
		// and changes when that port leaves (the kernel behaviour fixed here).
		la := netlink.NewLinkAttrs()
		la.Name = "hst-ctl"
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
			return err
		}
		ctl, err := netlink.LinkByName("hst-ctl")
		if err != nil {
			return err
		}
		low, err := port(ctl, "00:00:5e:00:53:01")
		if err != nil {
			return err
		}
		if _, err := port(ctl, "00:00:5e:00:53:02"); err != nil {
			return err
		}
		if got := macOf("hst-ctl"); got != "00:00:5e:00:53:01" {
			return fmt.Errorf("control bridge MAC %s, want its lowest port's", got)
		}
		if err := netlink.LinkDel(low); err != nil {
			return err
		}
		stolen := macOf("hst-ctl")
		if stolen != "00:00:5e:00:53:02" {
			return fmt.Errorf("control bridge MAC %s after its lowest port left, want the next port's", stolen)
		}

		// A bridge the plugin creates has the derived MAC, explicitly set.
		br, err := ensureBridge(&NetConf{BrName: "hst-br0"}, want)
		if err != nil {
			return err
		}
		if got := br.Attrs().HardwareAddr; !bytes.Equal(got, want) || got[0]&0x03 != 0x02 {
			return fmt.Errorf("new bridge MAC %s, want %s (locally administered unicast)", got, want)
		}
		if at, err := addrAssignType("hst-br0"); err != nil || at != netAddrSet {
			return fmt.Errorf("addr_assign_type %d, %v; want %d (set)", at, err, netAddrSet)
		}
		if low, err = port(br, "00:00:5e:00:53:11"); err != nil {
			return err
		}
		if _, err := port(br, "00:00:5e:00:53:12"); err != nil {
			return err
		}
		if err := netlink.LinkDel(low); err != nil {
			return err
		}
		if got := macOf("hst-br0"); got != want.String() {
			return fmt.Errorf("bridge MAC %s after ports came and the lowest left, want %s", got, want)
		}

		// An existing bridge with live ports and no fixed MAC keeps the MAC
		// they resolved, now fixed.
		if _, err := ensureBridge(&NetConf{BrName: "hst-ctl"}, want); err != nil {
			return err
		}
		if _, err := port(ctl, "00:00:5e:00:53:00"); err != nil {
			return err
		}
		if got := macOf("hst-ctl"); got != stolen {
			return fmt.Errorf("existing bridge MAC %s after a lower port joined, want it kept at %s", got, stolen)
		}

		// An existing bridge without ports and without a fixed MAC gets want.
		la = netlink.NewLinkAttrs()
		la.Name = "hst-empty"
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
			return err
		}
		if at, err := addrAssignType("hst-empty"); err != nil || at == netAddrSet {
			return fmt.Errorf("a bridge created without a MAC: addr_assign_type %d, %v; want not set", at, err)
		}
		if br, err = ensureBridge(&NetConf{BrName: "hst-empty"}, want); err != nil {
			return err
		}
		if got := br.Attrs().HardwareAddr; !bytes.Equal(got, want) {
			return fmt.Errorf("empty existing bridge MAC %s, want %s", got, want)
		}

		// A MAC set by someone else stays.
		admin, _ := net.ParseMAC("02:00:5e:00:53:aa")
		la = netlink.NewLinkAttrs()
		la.Name, la.HardwareAddr = "hst-admin", admin
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
			return err
		}
		if br, err = ensureBridge(&NetConf{BrName: "hst-admin"}, want); err != nil {
			return err
		}
		if got := br.Attrs().HardwareAddr; !bytes.Equal(got, admin) {
			return fmt.Errorf("explicitly set bridge MAC changed to %s, want %s kept", got, admin)
		}
		return nil
	})
}
