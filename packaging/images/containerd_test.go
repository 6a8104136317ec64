package images

import (
	"context"
	"testing"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"

	"github.com/hoist-project/hoist/internal/testenv/ctrdtest"
)

// privateContainerd adapts the shared private-containerd harness to this
// package's tests: a daemon of their own and a context in its namespace.
type privateContainerd struct {
	address string
	client  *containerd.Client
	ctx     context.Context
}

func startContainerd(t *testing.T) *privateContainerd {
	t.Helper()
	d := ctrdtest.StartContainerd(t)
	return &privateContainerd{address: d.Address, client: d.Client(),
		ctx: namespaces.WithNamespace(context.Background(), d.Namespace)}
}
