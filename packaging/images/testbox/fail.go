package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"
)

// failCmd exits with --code after --after-seconds, to exercise restart policies.
func failCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fail", flag.ContinueOnError)
	code := fs.Int("code", 1, "exit code")
	after := fs.Float64("after-seconds", 0, "seconds to wait before exiting")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *code < 0 || *code > 255 {
		return usageError{errors.New("--code must be 0-255")}
	}
	select {
	case <-time.After(time.Duration(*after * float64(time.Second))):
	case <-ctx.Done():
	}
	fmt.Fprintf(os.Stderr, "testbox fail: exiting with code %d\n", *code)
	os.Exit(*code)
	return nil
}
