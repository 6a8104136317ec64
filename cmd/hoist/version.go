package main

import (
	"context"
	"fmt"

	"github.com/hoist-project/hoist/internal/version"
)

func runVersion(_ context.Context, _ []string) error {
	fmt.Println(version.String())
	return nil
}
