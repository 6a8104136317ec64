// Command pause is the pod sandbox's PID 1: it holds the pod's namespaces open,
// reaps every orphan reparented to it, and exits 0 on SIGTERM or SIGINT.
//
// It is built static with minimal imports and copied into hoist.test/pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT)
	reap() // children may have exited before Notify was installed
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every exited child without blocking. SIGCHLD coalesces, so one
// signal may stand for many exits: loop until no exited child is left.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
