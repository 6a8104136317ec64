package testenv

import (
	"context"
	"testing"

	"github.com/hoist-project/hoist/internal/fabric"
)

// Fabric creates a fabric of nodes node namespaces for t (see internal/fabric)
// with a unique hoist-owned name and a free subnet, destroyed by t.Cleanup.
func Fabric(t testing.TB, nodes int) *fabric.Fabric {
	t.Helper()
	RequireRoot(t)
	RequireCommand(t, "ip", "iproute2") // Fabric.Exec runs `ip netns exec`
	f, err := fabric.Create(context.Background(), fabric.Config{Name: UniqueName("t"), Nodes: nodes})
	if err != nil {
		t.Fatalf("create fabric: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Destroy(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return f
}
