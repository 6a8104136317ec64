package main

import (
	"context"
	"flag"
	"time"
)

// sleepCmd waits --seconds (or forever) and exits 0, also on SIGTERM.
func sleepCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sleep", flag.ContinueOnError)
	seconds := fs.Float64("seconds", 0, "how long to sleep (0: until SIGTERM)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *seconds > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*seconds*float64(time.Second)))
		defer cancel()
	}
	<-ctx.Done()
	return nil
}
