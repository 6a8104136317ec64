package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestHealth(t *testing.T) {
	m := New()
	if err := m.Health(time.Minute); err == nil || !strings.Contains(err.Error(), "not programmed yet") {
		t.Fatalf("before any sync: %v", err)
	}
	m.SyncDone(errors.New("etcd down"))
	if err := m.Health(time.Minute); err == nil || !strings.Contains(err.Error(), "etcd down") {
		t.Fatalf("after a failed first sync: %v", err)
	}
	m.SyncDone(nil)
	if err := m.Health(time.Minute); err != nil {
		t.Fatalf("after a good sync: %v", err)
	}
	m.SyncDone(errors.New("netlink busy"))
	if err := m.Health(time.Minute); err != nil {
		t.Fatalf("one failure after a recent good sync is still healthy: %v", err)
	}
	if err := m.Health(0); err == nil || !strings.Contains(err.Error(), "netlink busy") {
		t.Fatalf("stale: %v", err)
	}
}
