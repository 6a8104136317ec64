package nsutil

import (
	"fmt"
	"os"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this integration test needs root (network namespaces): run it with sudo or as root")
	}
}

func TestIntegrationNamedNamespaceIsolation(t *testing.T) {
	requireRoot(t)
	name := fmt.Sprintf("hoist-t-nsutil-%d", os.Getpid())
	path, err := CreateNamed(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = DeleteNamed(name) })

	before, _ := netns.Get()
	defer before.Close()

	dummy := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "hoisttest0"}}
	if err := Do(path, func() error { return netlink.LinkAdd(dummy) }); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName("hoisttest0"); err == nil {
		t.Fatal("link created inside the namespace is visible in the root namespace")
	}
	err = Do(path, func() error {
		_, err := netlink.LinkByName("hoisttest0")
		return err
	})
	if err != nil {
		t.Fatalf("link not found inside the namespace: %v", err)
	}
	after, _ := netns.Get()
	defer after.Close()
	if !before.Equal(after) {
		t.Fatal("caller's thread namespace changed")
	}

	names, err := ListNamed()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range names {
		found = found || n == name
	}
	if !found {
		t.Fatalf("ListNamed() = %v, missing %s", names, name)
	}
	if err := DeleteNamed(name); err != nil {
		t.Fatal(err)
	}
	if err := DeleteNamed(name); err != nil {
		t.Fatalf("second delete must succeed: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("namespace path still exists: %v", err)
	}
}
