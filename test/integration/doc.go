// Package integration holds cross-component integration tests: the pieces of
// the foundation (images, private containerd, netns fabric) working together.
package integration
