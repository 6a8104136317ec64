// Command testbox is hoist's e2e test image helper, one static binary with a
// subcommand per job (like upstream's agnhost): serve-hostname, netexec,
// liveness, logs-generator, sleep and fail. It is /testbox in hoist.test/testbox.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"
)

type command func(ctx context.Context, args []string) error

func commands() map[string]command {
	return map[string]command{
		"serve-hostname": serveHostname,
		"netexec":        netexecCmd,
		"liveness":       livenessCmd,
		"logs-generator": logsGenerator,
		"sleep":          sleepCmd,
		"fail":           failCmd,
	}
}

func main() {
	cmds := commands()
	if len(os.Args) < 2 {
		usage(cmds)
		os.Exit(2)
	}
	cmd, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "testbox: unknown command %q\n", os.Args[1])
		usage(cmds)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := cmd(ctx, os.Args[2:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testbox %s: %v\n", os.Args[1], err)
		var ue usageError
		if errors.Is(err, flag.ErrHelp) || errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func usage(cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "usage: testbox <command> [flags]; commands:")
	for _, n := range names {
		fmt.Fprintln(os.Stderr, "  "+n)
	}
}

// usageError marks bad flags or arguments; testbox exits 2 for it.
type usageError struct{ error }

// parseFlags parses a subcommand's flags and rejects positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	return nil
}

// serveHTTP serves h on port until ctx ends, then shuts down gracefully.
func serveHTTP(ctx context.Context, port int, h http.Handler) error {
	srv := &http.Server{Addr: fmt.Sprintf(":%d", port), Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}
