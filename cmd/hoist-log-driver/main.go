// Command hoist-log-driver is the kubelet's per-container CRI logging driver:
// containerd's shim starts one for every container (`hoist-log-driver kubelet
// --log-driver=SPEC`, the same arguments `hoist kubelet` accepts for it). It is
// its own small binary because one starts with every container: the hoist
// binary would initialise every Kubernetes API package first, about 18 ms of
// CPU and 45 MB of touched pages per start against ~1 ms here.
package main

import (
	"fmt"
	"os"

	"github.com/hoist-project/hoist/kubelet/runtime/crilog"
)

func main() {
	spec, ok := crilog.DriverPath(os.Args[1:])
	if !ok {
		fmt.Fprintf(os.Stderr, "usage: %s kubelet %sPATH (run by containerd's shim for the kubelet's containers)\n", os.Args[0], crilog.DriverFlag)
		os.Exit(2)
	}
	crilog.RunDriver(spec) // never returns
}
