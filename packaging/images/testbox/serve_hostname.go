package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
)

// serveHostname answers every HTTP request with the pod's hostname.
func serveHostname(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve-hostname", flag.ContinueOnError)
	port := fs.Int("port", 9376, "HTTP port")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	host, err := os.Hostname()
	if err != nil {
		return err
	}
	return serveHTTP(ctx, *port, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, host)
	}))
}
