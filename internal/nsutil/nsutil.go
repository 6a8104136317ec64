// Package nsutil runs code inside Linux network namespaces and manages named
// ones (bind-mounted under /var/run/netns, as `ip netns` does). It is shared by
// the CNI plugins, the kubelet's network manager and the test harness.
package nsutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NamedDir is where named network namespaces are bind-mounted.
const NamedDir = "/var/run/netns"

// Path returns the bind-mount path of a named namespace.
func Path(name string) string { return filepath.Join(NamedDir, name) }

// Do runs fn with the calling goroutine's thread switched into the network
// namespace at nsPath. The thread is returned to its original namespace
// afterwards; if that fails the thread stays locked so Go discards it instead
// of reusing a thread in the wrong namespace.
func Do(nsPath string, fn func() error) error {
	target, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", nsPath, err)
	}
	defer target.Close()

	errc := make(chan error, 1)
	// A fresh goroutine keeps the caller's thread untouched even if restoring fails.
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer origin.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", nsPath, err)
			return
		}
		ferr := fn()
		if err := netns.Set(origin); err != nil {
			// Leave the thread locked: it exits with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("restore netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// CreateNamed creates a new network namespace bind-mounted at Path(name) and
// returns that path. The calling thread's namespace is not changed.
func CreateNamed(name string) (string, error) {
	if err := os.MkdirAll(NamedDir, 0o755); err != nil {
		return "", err
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer origin.Close()
		h, err := netns.NewNamed(name) // switches this thread into the new ns
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("create netns %s: %w", name, err)
			return
		}
		h.Close()
		if err := netns.Set(origin); err != nil {
			errc <- fmt.Errorf("restore netns after creating %s: %w", name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		return "", err
	}
	return Path(name), nil
}

// DeleteNamed unmounts and removes a named namespace; a missing one is not an error.
func DeleteNamed(name string) error {
	p := Path(name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", p, err)
	}
	return nil
}

// ListNamed returns the names of all named namespaces.
func ListNamed() ([]string, error) {
	entries, err := os.ReadDir(NamedDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}
