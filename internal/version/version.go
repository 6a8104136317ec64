// Package version holds the build version stamped in by the Makefile.
package version

import "runtime"

// Version is set with -ldflags "-X github.com/hoist-project/hoist/internal/version.Version=...".
var Version = "v0.0.0-dev"

// Kubernetes is the Kubernetes API version hoist's components speak.
const Kubernetes = "v1.32.0"

// String is the one-line form printed by `hoist version`.
func String() string {
	return "hoist " + Version + " (kubernetes " + Kubernetes + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")"
}
