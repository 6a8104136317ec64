// Command portmap is hoist's hostPort plugin (see internal/cni/portmap).
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/hoist-project/hoist/internal/cni/plugin"
	"github.com/hoist-project/hoist/internal/cni/portmap"
)

func main() {
	c := portmap.Commands{Print: plugin.Print, Decode: func(stdin []byte) (string, *current.Result, error) {
		conf, prev, err := plugin.DecodeConf(stdin)
		if err != nil {
			return "", nil, err
		}
		return conf.CNIVersion, prev, nil
	}}
	skel.PluginMainFuncs(skel.CNIFuncs{Add: c.Add, Del: c.Del, Check: c.Check, GC: c.GC, Status: c.Status},
		plugin.Versions, plugin.About("portmap"))
}
