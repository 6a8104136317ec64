package main

import (
	"context"
	"flag"
	"time"

	"github.com/hoist-project/hoist/packaging/images/testbox/internal/liveness"
)

// livenessCmd serves /healthz: 200 for --healthy-seconds, then 500.
func livenessCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("liveness", flag.ContinueOnError)
	port := fs.Int("port", 8080, "HTTP port")
	healthy := fs.Int("healthy-seconds", 10, "seconds /healthz answers 200 before it fails")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return serveHTTP(ctx, *port, liveness.NewHandler(time.Duration(*healthy)*time.Second, time.Now))
}
