package allocator

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hoist-project/hoist/master/storage/storagetest"
)

func TestRanges(t *testing.T) {
	r, err := ParseCIDR("10.96.0.0/12")
	if err != nil {
		t.Fatal(err)
	}
	if r.Value(0) != "10.96.0.1" || r.Value(255) != "10.96.1.0" {
		t.Errorf("values: %s %s", r.Value(0), r.Value(255))
	}
	for _, v := range []string{"10.96.0.1", "10.100.3.7"} {
		off, ok := r.Offset(v)
		if !ok || r.Value(off) != v {
			t.Errorf("round trip %s: %d %v", v, off, ok)
		}
	}
	for _, v := range []string{"10.96.0.0", "10.112.0.1", "nope"} {
		if _, ok := r.Offset(v); ok {
			t.Errorf("%s should be outside %s", v, r)
		}
	}
	small, _ := ParseCIDR("192.168.0.0/30")
	if small.Size() != 2 {
		t.Errorf("/30 has %d usable addresses, want 2", small.Size())
	}
	if _, err := ParseCIDR("10.0.0.0/31"); err == nil {
		t.Error("a /31 service CIDR should be refused")
	}
	p, err := ParsePortRange("30000-32767")
	if err != nil || p.Size() != 2768 || p.Value(0) != "30000" {
		t.Errorf("port range: %+v %v", p, err)
	}
	for _, bad := range []string{"", "5-1", "0-10", "1-70000", "x"} {
		if _, err := ParsePortRange(bad); err == nil {
			t.Errorf("port range %q accepted", bad)
		}
	}
}

func TestIntegrationAllocatorSharedEtcd(t *testing.T) {
	endpoint := storagetest.Embedded(t)
	r, _ := ParseCIDR("10.0.0.0/29") // 6 addresses
	a := New(storagetest.Client(t, endpoint), "/registry/ranges/test/", r)
	b := New(storagetest.Client(t, endpoint), "/registry/ranges/test/", r) // a second master
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := map[string]string{}
	for i := range 6 {
		al, owner := a, "a"
		if i%2 == 1 {
			al, owner = b, "b"
		}
		v, err := al.Allocate(ctx, owner+string(rune('0'+i)))
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := got[v]; dup {
			t.Fatalf("%s allocated twice", v)
		}
		got[v] = owner
	}
	if _, err := a.Allocate(ctx, "x"); !errors.Is(err, ErrFull) {
		t.Fatalf("allocation from a full range: %v", err)
	}
	if err := b.Claim(ctx, "10.0.0.1", "someone-else"); !errors.Is(err, ErrAllocated) {
		t.Fatalf("claiming a taken value: %v", err)
	}
	owner, _ := a.Owner(ctx, "10.0.0.1")
	if err := a.Claim(ctx, "10.0.0.1", owner); err != nil {
		t.Fatalf("re-claim by its owner: %v", err)
	}
	if err := a.Release(ctx, "10.0.0.1", "not-the-owner"); err != nil {
		t.Fatal(err)
	}
	if o, _ := a.Owner(ctx, "10.0.0.1"); o != owner {
		t.Fatal("release by a non-owner freed the value")
	}
	if err := a.Release(ctx, "10.0.0.1", owner); err != nil {
		t.Fatal(err)
	}
	if v, err := b.Allocate(ctx, "new"); err != nil || v != "10.0.0.1" {
		t.Fatalf("after release: %s %v", v, err)
	}
	if n, _ := a.Used(ctx); n != 6 {
		t.Errorf("used = %d, want 6", n)
	}
}
