package ebpf

import (
	"strings"
	"testing"
)

// bpffs refuses dots in names, and flannel's VXLAN device is flannel.1: a
// TCX link on it must still get a pin name, distinct from other interfaces'.
func TestTCXPinNameHasNoDot(t *testing.T) {
	seen := map[string]string{}
	for _, ifname := range []string{"eth0", "flannel.1", "eth0.100", "flannel_1", "a.b.c"} {
		for _, dir := range []string{"ingress", "egress"} {
			name := tcxPinName(dir, ifname)
			if strings.Contains(name, ".") {
				t.Errorf("tcxPinName(%q, %q) = %q: bpffs refuses names with a dot", dir, ifname, name)
			}
			if !strings.HasPrefix(name, "tcx-") {
				t.Errorf("tcxPinName(%q, %q) = %q: the prune of stale links looks for the tcx- prefix", dir, ifname, name)
			}
			if prev, dup := seen[name]; dup {
				t.Errorf("tcxPinName: %q and %s/%s both map to %q", prev, dir, ifname, name)
			}
			seen[name] = dir + "/" + ifname
		}
	}
}
