package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"
)

// logsGenerator prints --lines numbered lines at --rate lines per second.
func logsGenerator(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("logs-generator", flag.ContinueOnError)
	lines := fs.Int("lines", 10, "number of lines to write")
	rate := fs.Float64("rate", 10, "lines per second (0: as fast as possible)")
	thenSleep := fs.Bool("then-sleep", false, "keep running after the last line until SIGTERM")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *lines < 0 || *rate < 0 {
		return usageError{errors.New("--lines and --rate must not be negative")}
	}
	var tick <-chan time.Time
	if *rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / *rate))
		defer t.Stop()
		tick = t.C
	}
	host, _ := os.Hostname()
	for i := 0; i < *lines; i++ {
		if tick != nil {
			select {
			case <-tick:
			case <-ctx.Done():
				return nil
			}
		}
		fmt.Printf("%s line %d of %d from %s\n", time.Now().UTC().Format(time.RFC3339Nano), i+1, *lines, host)
	}
	if *thenSleep {
		<-ctx.Done()
	}
	return nil
}
