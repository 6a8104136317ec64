package proxy

import (
	"os"
	"testing"

	"github.com/hoist-project/hoist/proxy/ebpf/ebpftest"
)

// TestMain lets the test binary double as the eBPF tests' client process.
func TestMain(m *testing.M) {
	ebpftest.Main()
	os.Exit(m.Run())
}
