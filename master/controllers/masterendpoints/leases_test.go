package masterendpoints

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/master/storage/storagetest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func listed(t *testing.T, l *EtcdLeases) []string {
	t.Helper()
	ms, err := l.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range ms {
		out = append(out, x.String())
	}
	slices.Sort(out)
	return out
}

// TestIntegrationEtcdLeases runs two masters' leases against a real etcd:
// both are listed, renewing writes nothing, a removed master goes at once
// and one that stops renewing when its lease expires, and it comes back
// with a fresh lease when it renews again.
func TestIntegrationEtcdLeases(t *testing.T) {
	client := storagetest.InProcess(t)
	ctx := context.Background()
	a, b := &EtcdLeases{Client: client}, &EtcdLeases{Client: client}
	ma, mb := m("10.0.0.1:6443"), m("10.0.0.2:6443")
	for _, r := range []struct {
		l *EtcdLeases
		m Master
	}{{a, ma}, {b, mb}} {
		if err := r.l.Renew(ctx, r.m, DefaultTTL); err != nil {
			t.Fatal(err)
		}
	}
	if got := listed(t, a); !slices.Equal(got, []string{"10.0.0.1:6443", "10.0.0.2:6443"}) {
		t.Fatalf("listed %v", got)
	}
	rev := func() int64 {
		r, err := client.Get(ctx, key(ma))
		if err != nil || len(r.Kvs) != 1 {
			t.Fatalf("key %s: %v %v", key(ma), err, r)
		}
		return r.Kvs[0].ModRevision
	}
	before := rev()
	if err := a.Renew(ctx, ma, DefaultTTL); err != nil {
		t.Fatal(err)
	}
	if after := rev(); after != before {
		t.Fatalf("renewing rewrote the key (mod revision %d -> %d)", before, after)
	}
	// Deleted by hand: the next renewal puts it back.
	if _, err := client.Delete(ctx, key(ma)); err != nil {
		t.Fatal(err)
	}
	if err := a.Renew(ctx, ma, DefaultTTL); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, b); len(got) != 2 {
		t.Fatalf("after renewing a deleted key: %v", got)
	}

	if err := a.Remove(ctx, ma); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, b); !slices.Equal(got, []string{"10.0.0.2:6443"}) {
		t.Fatalf("after removing 10.0.0.1: %v", got)
	}

	// A third master stops renewing a short lease: etcd drops it.
	c, mc := &EtcdLeases{Client: client}, m("10.0.0.3:6443")
	if err := c.Renew(ctx, mc, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, a); len(got) != 2 {
		t.Fatalf("with the third master: %v", got)
	}
	expired := c.id
	start := time.Now()
	testenv.WaitFor(t, 15*time.Second, "the unrenewed lease to expire", func() error {
		if got := listed(t, a); !slices.Equal(got, []string{"10.0.0.2:6443"}) {
			return fmt.Errorf("listed: %v", got)
		}
		return nil
	})
	t.Logf("a 2 s lease was gone after %s", time.Since(start).Round(10*time.Millisecond))
	if err := c.Renew(ctx, mc, DefaultTTL); err != nil {
		t.Fatal(err)
	}
	if c.id == expired {
		t.Fatal("renewing after expiry kept the expired lease id")
	}
	if got := listed(t, a); !slices.Equal(got, []string{"10.0.0.2:6443", "10.0.0.3:6443"}) {
		t.Fatalf("after renewing an expired lease: %v", got)
	}
	ttl, err := client.TimeToLive(ctx, c.id, clientv3.WithAttachedKeys())
	if err != nil || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != key(mc) {
		t.Fatalf("new lease %x: %v %+v", c.id, err, ttl)
	}
	// Junk under the prefix is skipped, not fatal.
	if _, err := client.Put(ctx, Prefix+"junk", "not-an-address"); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, a); len(got) != 2 {
		t.Fatalf("with junk: %v", got)
	}
}
