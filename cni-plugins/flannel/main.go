// Command flannel is hoist's flannel CNI meta-plugin (see internal/cni/flannel).
package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/hoist-project/hoist/internal/cni/flannel"
	"github.com/hoist-project/hoist/internal/cni/plugin"
)

func main() {
	c := flannel.Commands{Print: plugin.Print}
	skel.PluginMainFuncs(skel.CNIFuncs{Add: c.Add, Del: c.Del, Check: c.Check, GC: c.GC, Status: c.Status},
		plugin.Versions, plugin.About("flannel"))
}
