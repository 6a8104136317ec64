package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/hoist-project/hoist/internal/fabric"
)

const clusterUsage = "usage: hoist cluster up|down|exec [flags]"

// runCluster dispatches `hoist cluster <verb>`. Only `down` (the sweeper) works
// so far; the multi-node cluster itself is a later issue.
func runCluster(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError{clusterUsage}
	}
	switch args[0] {
	case "up", "exec":
		return notImplemented("cluster "+args[0])(ctx, args[1:])
	case "down":
		return runClusterDown(ctx, args[1:], os.Stdout)
	case "-h", "--help", "help":
		fmt.Fprintln(os.Stderr, clusterUsage)
		return nil
	default:
		return usageError{fmt.Sprintf("cluster: unknown verb %q; %s", args[0], clusterUsage)}
	}
}

// runClusterDown removes hoist fabrics, private containerd daemons and
// hoist-named network namespaces and links, printing one line per object.
func runClusterDown(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("hoist cluster down", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	all := fs.Bool("all", false, "remove every hoist fabric, private containerd, hoist-* netns and hst* root link, also of running processes")
	stale := fs.Bool("stale", false, "remove only what processes that have died left behind (safe while tests run)")
	dataDir := fs.String("data-dir", "", "remove the cluster kept under DIR")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.PrintDefaults()
			return nil
		}
		return usageError{"cluster down: " + err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("cluster down: unexpected argument %q", fs.Arg(0))}
	}
	switch {
	case *dataDir != "":
		return fmt.Errorf("cluster down --data-dir: %w (use --all or --stale)", errNotImplemented)
	case *all && *stale:
		return usageError{"cluster down: --all and --stale exclude each other"}
	case !*all && !*stale:
		return usageError{"cluster down: say what to remove: --all, --stale or --data-dir DIR"}
	}
	removed, err := fabric.Sweep(ctx, fabric.SweepOptions{All: *all})
	for _, r := range removed {
		fmt.Fprintln(out, "removed", r)
	}
	if len(removed) == 0 && err == nil {
		fmt.Fprintln(out, "nothing to remove")
	}
	return err
}
