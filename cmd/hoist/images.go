package main

import "context"

// runImages is replaced when packaging/images lands.
func runImages(ctx context.Context, args []string) error { return notImplemented("images")(ctx, args) }
