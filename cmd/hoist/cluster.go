package main

import "context"

// runCluster is replaced when the netns cluster harness lands.
func runCluster(ctx context.Context, args []string) error { return notImplemented("cluster")(ctx, args) }
