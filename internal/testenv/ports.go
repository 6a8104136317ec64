package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Ports handed to subprocesses (etcd, registries) come from below the
// kernel's ephemeral range (32768+ on Linux): a port picked with ":0" and
// closed again can be taken by any outgoing connection before the
// subprocess binds it. Within this range only other hoist tests compete,
// and a per-port flock held until the test ends settles that across
// parallel test binaries.
const (
	portRangeLow  = 20000
	portRangeHigh = 32000
	portLockDir   = "hoist-testports"
)

// FreePort reserves a TCP port that nothing listens on (any address) and
// no other hoist test holds, until t ends.
func FreePort(t testing.TB) int {
	t.Helper()
	dir := filepath.Join(os.TempDir(), portLockDir)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatalf("port lock dir: %v", err)
	}
	for range 200 {
		port := portRangeLow + rand.IntN(portRangeHigh-portRangeLow)
		lock, ok := lockPort(dir, port)
		if !ok {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			lock.Close()
			continue
		}
		l.Close()
		t.Cleanup(func() { lock.Close() })
		return port
	}
	t.Fatalf("no free TCP port in %d-%d after 200 tries", portRangeLow, portRangeHigh)
	return 0
}

// FreeLoopbackURL is http://127.0.0.1:<FreePort>.
func FreeLoopbackURL(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("http://127.0.0.1:%d", FreePort(t))
}

func lockPort(dir string, port int) (*os.File, bool) {
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprint(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
}
