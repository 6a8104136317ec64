// Command hoist is the single hyperkube-style binary of the hoist suite. It only
// parses flags and calls the components' Run functions; no component logic
// lives here.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// usageError is returned for bad flags or arguments; it exits 2 like flag parsing does.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

type subcommand struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

// subcommands is the one place where components are wired to the command line.
func subcommands() map[string]subcommand {
	return map[string]subcommand{
		"master":      {"run the API server, scheduler and controllers", runMaster},
		"kubelet":     {"run the node agent", runKubelet},
		"flanneld":    {"run the network fabric daemon", runFlanneld},
		"proxy":       {"run the service proxy", runProxy},
		"up":          {"run a single-machine cluster (master + node)", runUp},
		"cluster":     {"run a multi-node cluster in network namespaces", runCluster},
		"images":      {"build, list and import hoist's own images", runImages},
		"hollow-node": {"register fake nodes for scale tests", runHollowNode},
		"version":     {"print the version", runVersion},
	}
}

func usage(cmds map[string]subcommand) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "usage: hoist <command> [flags]\n\ncommands:")
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-12s %s\n", n, cmds[n].summary)
	}
}

func main() {
	cmds := subcommands()
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage(cmds)
		os.Exit(2)
	}
	cmd, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "hoist: unknown command %q\n", os.Args[1])
		usage(cmds)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cmd.run(ctx, os.Args[2:])
	stop()
	os.Exit(exitCode(err))
}

func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "hoist:", err)
		return 2
	default:
		fmt.Fprintln(os.Stderr, "hoist:", err)
		return 1
	}
}
