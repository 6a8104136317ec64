package bridge

import (
	"bytes"
	"net"
	"testing"
)

func TestStableMAC(t *testing.T) {
	a := stableMAC(macKey("hoist0", []net.IP{net.ParseIP("10.244.1.1")}))
	if !bytes.Equal(a, stableMAC(macKey("hoist0", []net.IP{net.ParseIP("10.244.1.1")}))) {
		t.Fatal("stableMAC is not deterministic")
	}
	if bytes.Equal(a, stableMAC(macKey("hoist0", []net.IP{net.ParseIP("10.244.2.1")}))) {
		t.Fatal("nodes with different gateways got the same bridge MAC")
	}
	if a[0]&0x01 != 0 || a[0]&0x02 == 0 {
		t.Fatalf("MAC %s is not locally administered unicast", a)
	}
	if got := macKey("cni0", []net.IP{nil, net.ParseIP("fd00::1")}); got != "cni0/fd00::1" {
		t.Fatalf("macKey skips missing gateways: got %q", got)
	}
}
