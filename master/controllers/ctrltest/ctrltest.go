// Package ctrltest runs hoist controllers inside unit tests: it wires a
// controller to an informer factory over a (fake) clientset, stops both
// when the test ends, and polls for conditions with a deadline. It is for
// tests only.
package ctrltest

import (
	"context"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/hoist-project/hoist/internal/informers"
)

// Timeout is how long WaitFor polls before failing the test.
const Timeout = 10 * time.Second

// Runner is a controller: Run blocks until ctx ends.
type Runner interface {
	Run(ctx context.Context) error
}

// Start builds a controller with newCtl on a fresh informer factory over
// client, starts the factory and the controller, and returns the context
// they run under. When the test ends it cancels that context, fails the
// test if Run returned an error, and shuts the factory down.
func Start(t testing.TB, client kubernetes.Interface, newCtl func(informers.SharedInformerFactory) Runner) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(client, 0)
	c := newCtl(factory)
	factory.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		factory.Shutdown()
	})
	return ctx
}

// WaitFor polls cond until it holds, failing the test with "timed out
// waiting for <what>" after Timeout.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
