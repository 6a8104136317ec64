// Command loopback brings up lo in the container (see internal/cni/loopback).
package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/hoist-project/hoist/internal/cni/loopback"
	"github.com/hoist-project/hoist/internal/cni/plugin"
)

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: loopback.Add, Del: loopback.Del, Check: loopback.Check, Status: loopback.Status},
		plugin.Versions, plugin.About("loopback"))
}
