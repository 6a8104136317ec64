package vxlan

import (
	"encoding/json"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/hoist-project/hoist/flannel/backend"
	"github.com/hoist-project/hoist/flannel/config"
	"github.com/hoist-project/hoist/flannel/subnet"
)

func TestStableMAC(t *testing.T) {
	a, b := StableMAC("n0", 1), StableMAC("n0", 1)
	if a.String() != b.String() {
		t.Fatal("not stable")
	}
	if StableMAC("n1", 1).String() == a.String() || StableMAC("n0", 2).String() == a.String() {
		t.Fatal("not distinct per node and VNI")
	}
	if a[0]&0x02 == 0 || a[0]&0x01 != 0 {
		t.Fatalf("%s is not a locally administered unicast MAC", a)
	}
}

func TestDesired(t *testing.T) {
	data, _ := json.Marshal(Data{VNI: 1, VtepMAC: "0a:00:00:00:00:02"})
	peers := []subnet.Lease{
		{Subnet: netip.MustParsePrefix("10.244.2.0/24"), Attrs: subnet.Attrs{PublicIP: netip.MustParseAddr("172.31.0.3"), BackendType: "vxlan", BackendData: data}},
		{Subnet: netip.MustParsePrefix("10.244.3.0/24"), Attrs: subnet.Attrs{PublicIP: netip.MustParseAddr("172.31.0.4"), BackendType: "vxlan", BackendData: json.RawMessage(`{}`)}},
	}
	n := &network{cfg: config.Config{Backend: config.Backend{Type: config.VXLAN, VNI: 1}}, env: backend.Env{Log: slog.New(slog.DiscardHandler)}}
	fdb, neigh, routes, errs := n.desired(peers, 7)
	gw := netip.MustParseAddr("10.244.2.0")
	if len(fdb) != 1 || fdb["0a:00:00:00:00:02"].Dst != netip.MustParseAddr("172.31.0.3") {
		t.Fatalf("fdb %v", fdb)
	}
	if len(neigh) != 1 || neigh[gw].MAC != "0a:00:00:00:00:02" {
		t.Fatalf("neigh %v", neigh)
	}
	want := backend.Route{Dst: netip.MustParsePrefix("10.244.2.0/24"), Gw: gw, Link: 7, Onlink: true}
	if len(routes) != 1 || routes[want.Dst] != want {
		t.Fatalf("routes %v", routes)
	}
	if len(errs) != 1 {
		t.Fatalf("a peer without a VtepMAC must be reported: %v", errs)
	}
}
