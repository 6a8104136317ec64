package main

import (
	"os"
	"runtime/debug"
)

// preferSmallHeap sets the GC target to percent unless the environment
// sets GOGC or GOMEMLIMIT: hoist's daemons trade some GC CPU for RSS by
// default (docs/master.md and docs/kubelet.md give the numbers).
func preferSmallHeap(percent int) {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(percent)
	}
}
