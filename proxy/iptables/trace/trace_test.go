package trace

import (
	"net/netip"
	"strings"
	"testing"
)

const rules = `*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:MARKIT - [0:0]
:EMPTY - [0:0]
-A PREROUTING -j EMPTY
-A PREROUTING -d 10.0.0.1/32 -p tcp -m tcp --dport 80 -j MARKIT
-A PREROUTING -d 10.0.0.1/32 -p tcp -m comment --comment "three ways" -m statistic --mode random --probability 0.33333333349 -j DNAT --to-destination 10.1.0.1:8080
-A PREROUTING -d 10.0.0.1/32 -p tcp -m statistic --mode random --probability 0.50000000000 -j DNAT --to-destination 10.1.0.2:8080
-A PREROUTING -d 10.0.0.1/32 -p tcp -j DNAT --to-destination 10.1.0.3:8080
-A MARKIT -j MARK --set-xmark 0x4000/0x4000
-A POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A POSTROUTING -j MASQUERADE
COMMIT
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -d 10.0.0.2/32 -j REJECT --reject-with icmp-port-unreachable
COMMIT
`

func TestEnumerateAndMarks(t *testing.T) {
	tc, err := New([]byte(rules))
	if err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddr("192.168.0.1")
	res := tc.Enumerate(Packet{Src: src, Dst: netip.MustParseAddr("10.0.0.1"), Proto: "tcp", DPort: 80})
	if len(res) != 3 {
		t.Fatalf("paths %v", res)
	}
	for _, r := range res {
		if !r.Masquerade || r.Verdict != "DNAT" || r.Prob < 0.333 || r.Prob > 0.334 {
			t.Errorf("path %s prob %.4f", r, r.Prob)
		}
	}
	if r := tc.Trace(Packet{Src: src, Dst: netip.MustParseAddr("10.0.0.1"), Proto: "udp", DPort: 80}, First); r.String() != "ACCEPT" {
		t.Errorf("udp: %s", r)
	}
	if r := tc.Trace(Packet{Src: src, Dst: netip.MustParseAddr("10.0.0.2"), Proto: "tcp", DPort: 1}, First); r.Verdict != "REJECT" {
		t.Errorf("reject: %s", r)
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	for _, bad := range []string{
		"*nat\n-A X -m foo --unknown 1 -j ACCEPT\nCOMMIT\n",
		"-A X -j ACCEPT\n",
		"*nat\n-A X -d 10.0.0.1/33 -j ACCEPT\n",
		"*nat\n-A X -d 10.0.0.1\n",
	} {
		if _, err := New([]byte(bad)); err == nil || !strings.Contains(err.Error(), "line ") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
