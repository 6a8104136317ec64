// Command host-local is hoist's IPAM plugin: addresses from local ranges,
// leases on disk (see internal/cni/ipam).
package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/hoist-project/hoist/internal/cni/ipam"
	"github.com/hoist-project/hoist/internal/cni/plugin"
)

func main() {
	c := ipam.Commands{Print: plugin.Print}
	skel.PluginMainFuncs(skel.CNIFuncs{Add: c.Add, Del: c.Del, Check: c.Check, GC: c.GC, Status: c.Status},
		plugin.Versions, plugin.About("host-local"))
}
