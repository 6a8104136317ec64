package iptables_test

import (
	"bytes"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	ct "github.com/hoist-project/hoist/proxy/changes/changestest"
	"github.com/hoist-project/hoist/proxy/iptables"
)

func chainsWritten(batch string) []string {
	var out []string
	for _, l := range strings.Split(batch, "\n") {
		if strings.HasPrefix(l, ":") {
			out = append(out, strings.Fields(l[1:])[0])
		}
	}
	return out
}

func TestPartialSyncTouchesOnlyChangedChains(t *testing.T) {
	f := newFixture(t)
	webService(f)
	webSlices(f, []ct.EP{{IP: "10.244.1.5", Node: "n1"}}, nil)
	f.tr.SetService(ct.Service("db", "10.96.0.20", []v1.ServicePort{ct.Port("", v1.ProtocolTCP, 5432, "5432", 0)}))
	dbSlice := func(ips ...string) *discovery.EndpointSlice {
		var eps []ct.EP
		for _, ip := range ips {
			eps = append(eps, ct.EP{IP: ip, Node: "n1"})
		}
		return ct.Slice("db", "db-0", []discovery.EndpointPort{ct.SlicePort("", v1.ProtocolTCP, 5432)}, eps...)
	}
	f.tr.SetSlice(dbSlice("10.244.1.8", "10.244.1.9"))
	prev, _ := f.render(cfg)
	again, _ := f.render(cfg)
	if !bytes.Equal(prev.Restore(nil, nil), again.Restore(nil, nil)) {
		t.Fatal("rendering the same state twice differs")
	}
	if b := again.Restore(prev, nil); len(b) != 0 {
		t.Fatalf("partial sync of an unchanged state writes:\n%s", b)
	}

	// One db endpoint goes away: only db's service chain changes and the
	// removed endpoint's chain is deleted; web's chains and the fixed
	// chains are not written.
	f.tr.SetSlice(dbSlice("10.244.1.8"))
	next, _ := f.render(cfg)
	batch := string(next.Restore(prev, nil))
	written := chainsWritten(batch)
	if len(written) != 2 || !strings.HasPrefix(written[0], "KUBE-SVC-") || !strings.HasPrefix(written[1], "KUBE-SEP-") {
		t.Fatalf("partial sync declares %v, want db's KUBE-SVC and the stale KUBE-SEP:\n%s", written, batch)
	}
	if !strings.Contains(batch, "-X "+written[1]) || strings.Contains(batch, "web") || !strings.HasPrefix(batch, "*nat\n") {
		t.Fatalf("unexpected partial batch:\n%s", batch)
	}

	// A full sync writes every chain and deletes KUBE-* chains that exist
	// in the kernel but are no longer wanted.
	full := string(next.Restore(nil, map[string][]string{iptables.Nat: {"KUBE-SERVICES", "KUBE-SVC-GONE"}}))
	if !strings.Contains(full, ":KUBE-SVC-GONE - [0:0]") || !strings.Contains(full, "-X KUBE-SVC-GONE") || strings.Contains(full, "-X KUBE-SERVICES") {
		t.Fatalf("full sync does not delete exactly the stale chain:\n%s", full)
	}
	if got := len(chainsWritten(full)); got != len(next.Tables[iptables.Nat])+len(next.Tables[iptables.Filter])+1 {
		t.Fatalf("full sync declares %d chains", got)
	}
}

func TestChainsInSave(t *testing.T) {
	save := "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-X - [0:0]\n:HOIST-OTHER - [0:0]\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n"
	if got := strings.Join(iptables.ChainsInSave([]byte(save)), ","); got != "KUBE-SERVICES,KUBE-SVC-X" {
		t.Fatalf("ChainsInSave = %s", got)
	}
}
