// Command bridge is hoist's bridge plugin (see internal/cni/bridge).
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/hoist-project/hoist/internal/cni/bridge"
	"github.com/hoist-project/hoist/internal/cni/plugin"
)

func main() {
	c := bridge.Commands{Print: plugin.Print, DecodePrev: func(stdin []byte) (*current.Result, error) {
		_, prev, err := plugin.DecodeConf(stdin)
		return prev, err
	}}
	skel.PluginMainFuncs(skel.CNIFuncs{Add: c.Add, Del: c.Del, Check: c.Check, GC: c.GC, Status: c.Status},
		plugin.Versions, plugin.About("bridge"))
}
