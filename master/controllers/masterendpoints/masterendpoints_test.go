package masterendpoints

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/hoist-project/hoist/master/controllers/fakeapi"
)

func m(s string) Master {
	p, err := ParseMaster(s)
	if err != nil {
		panic(err)
	}
	return p
}

// fakeLeases is an in-memory Leases.
type fakeLeases struct {
	mu  sync.Mutex
	set map[Master]bool
}

func newLeases(ms ...Master) *fakeLeases {
	l := &fakeLeases{set: map[Master]bool{}}
	for _, x := range ms {
		l.set[x] = true
	}
	return l
}

func (l *fakeLeases) Renew(_ context.Context, self Master, _ time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.set[self] = true
	return nil
}

func (l *fakeLeases) Remove(_ context.Context, self Master) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.set, self)
	return nil
}

func (l *fakeLeases) List(context.Context) ([]Master, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Master
	for x := range l.set {
		out = append(out, x)
	}
	return out, nil
}

// addrs renders subsets as ip:port strings, in order.
func addrs(subsets []corev1.EndpointSubset) []string {
	var out []string
	for _, s := range subsets {
		for _, a := range s.Addresses {
			out = append(out, Master{IP: netip.MustParseAddr(a.IP), Port: s.Ports[0].Port}.String())
		}
	}
	return out
}

func TestDesiredSubsetsSortsGroupsAndDeduplicates(t *testing.T) {
	got := DesiredSubsets([]Master{m("10.0.0.9:6443"), m("10.0.0.10:6443"), m("10.0.0.2:6443"),
		m("10.0.0.9:6443"), m("127.0.0.1:7000")})
	if len(got) != 2 {
		t.Fatalf("%d subsets, want 2 (one per port): %+v", len(got), got)
	}
	want := []string{"10.0.0.2:6443", "10.0.0.9:6443", "10.0.0.10:6443", "127.0.0.1:7000"}
	if a := addrs(got); !slices.Equal(a, want) {
		t.Fatalf("addresses %v, want %v (numeric order, no duplicates)", a, want)
	}
	p := got[0].Ports[0]
	if p.Name != "https" || p.Port != 6443 || p.Protocol != corev1.ProtocolTCP {
		t.Fatalf("port %+v, want https 6443/TCP", p)
	}
	if DesiredSubsets(nil) != nil {
		t.Fatal("no masters must give no subsets")
	}
}

func TestDesiredSlice(t *testing.T) {
	s := DesiredSlice(DesiredSubsets([]Master{m("10.0.0.2:6443"), m("10.0.0.1:6443")}))
	if s.Name != "kubernetes" || s.Namespace != "default" || s.Labels[discoveryv1.LabelServiceName] != "kubernetes" {
		t.Fatalf("slice meta %+v", s.ObjectMeta)
	}
	if s.AddressType != discoveryv1.AddressTypeIPv4 || len(s.Endpoints) != 2 ||
		s.Endpoints[0].Addresses[0] != "10.0.0.1" || s.Endpoints[1].Addresses[0] != "10.0.0.2" {
		t.Fatalf("slice %+v", s)
	}
	for _, e := range s.Endpoints {
		if e.Conditions.Ready == nil || !*e.Conditions.Ready {
			t.Fatalf("endpoint %v not ready", e.Addresses)
		}
	}
	if len(s.Ports) != 1 || *s.Ports[0].Name != "https" || *s.Ports[0].Port != 6443 || *s.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Fatalf("slice ports %+v", s.Ports)
	}
	v6 := DesiredSlice(DesiredSubsets([]Master{m("[fd00::1]:6443")}))
	if v6.AddressType != discoveryv1.AddressTypeIPv6 || v6.Endpoints[0].Addresses[0] != "fd00::1" {
		t.Fatalf("IPv6 slice %+v", v6)
	}
	if empty := DesiredSlice(nil); empty.AddressType != discoveryv1.AddressTypeIPv4 || len(empty.Endpoints) != 0 {
		t.Fatalf("empty slice %+v", empty)
	}
}

// writes counts create/update/delete actions on the two objects.
func writes(c *fake.Clientset) map[string]int {
	out := map[string]int{}
	for _, a := range c.Actions() {
		if v := a.GetVerb(); v == "create" || v == "update" || v == "delete" {
			out[v+" "+a.GetResource().Resource]++
		}
	}
	return out
}

func get(t *testing.T, c *fake.Clientset) (*corev1.Endpoints, *discoveryv1.EndpointSlice) {
	t.Helper()
	ctx := context.Background()
	ep, err := c.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ep, s
}

func sliceAddrs(s *discoveryv1.EndpointSlice) []string {
	var out []string
	for _, e := range s.Endpoints {
		out = append(out, e.Addresses...)
	}
	return out
}

func TestReconcileCreatesUpdatesAndLeavesAlone(t *testing.T) {
	ctx := context.Background()
	c := fakeapi.New()
	leases := newLeases(m("10.0.0.2:6443"))
	if err := Reconcile(ctx, c, leases); err != nil {
		t.Fatal(err)
	}
	ep, s := get(t, c)
	if a := addrs(ep.Subsets); !slices.Equal(a, []string{"10.0.0.2:6443"}) || ep.Labels[skipMirror] != "true" {
		t.Fatalf("created Endpoints %v labels %v", a, ep.Labels)
	}
	if a := sliceAddrs(s); !slices.Equal(a, []string{"10.0.0.2"}) {
		t.Fatalf("created slice addresses %v", a)
	}
	if w := writes(c); w["create endpoints"] != 1 || w["create endpointslices"] != 1 || len(w) != 2 {
		t.Fatalf("writes %v, want one create each", w)
	}

	c.ClearActions()
	if err := Reconcile(ctx, c, leases); err != nil {
		t.Fatal(err)
	}
	if w := writes(c); len(w) != 0 {
		t.Fatalf("unchanged leases wrote %v", w)
	}

	c.ClearActions()
	_ = leases.Renew(ctx, m("10.0.0.1:6443"), time.Minute)
	if err := Reconcile(ctx, c, leases); err != nil {
		t.Fatal(err)
	}
	ep, s = get(t, c)
	if a := addrs(ep.Subsets); !slices.Equal(a, []string{"10.0.0.1:6443", "10.0.0.2:6443"}) {
		t.Fatalf("updated Endpoints %v", a)
	}
	if a := sliceAddrs(s); !slices.Equal(a, []string{"10.0.0.1", "10.0.0.2"}) {
		t.Fatalf("updated slice %v", a)
	}
	if w := writes(c); w["update endpoints"] != 1 || w["update endpointslices"] != 1 || len(w) != 2 {
		t.Fatalf("writes %v, want one update each", w)
	}

	// Removed by an operator, or stripped of their labels: put back.
	c.ClearActions()
	if err := c.CoreV1().Endpoints("default").Delete(ctx, "kubernetes", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Labels = nil
	if _, err := c.DiscoveryV1().EndpointSlices("default").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := Reconcile(ctx, c, leases); err != nil {
		t.Fatal(err)
	}
	ep, s = get(t, c)
	if len(addrs(ep.Subsets)) != 2 || s.Labels[discoveryv1.LabelServiceName] != "kubernetes" {
		t.Fatalf("not restored: Endpoints %v, slice labels %v", addrs(ep.Subsets), s.Labels)
	}
}

func TestReconcileReplacesSliceOfOtherFamily(t *testing.T) {
	ctx := context.Background()
	c := fakeapi.New()
	if err := Reconcile(ctx, c, newLeases(m("10.0.0.1:6443"))); err != nil {
		t.Fatal(err)
	}
	if err := Reconcile(ctx, c, newLeases(m("[fd00::1]:6443"))); err != nil {
		t.Fatal(err)
	}
	_, s := get(t, c)
	if s.AddressType != discoveryv1.AddressTypeIPv6 || !slices.Equal(sliceAddrs(s), []string{"fd00::1"}) {
		t.Fatalf("slice %s %v, want IPv6 fd00::1", s.AddressType, sliceAddrs(s))
	}
}

func TestReconcileRetriesConflicts(t *testing.T) {
	ctx := context.Background()
	c := fakeapi.New()
	if err := Reconcile(ctx, c, newLeases(m("10.0.0.1:6443"))); err != nil {
		t.Fatal(err)
	}
	// Another master's write lands between our read and our write once.
	conflicts := 0
	c.PrependReactor("update", "endpoints", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts++; conflicts == 1 {
			return true, nil, apierrors.NewConflict(corev1.Resource("endpoints"), "kubernetes", errors.New("changed meanwhile"))
		}
		return false, nil, nil
	})
	if err := Reconcile(ctx, c, newLeases(m("10.0.0.1:6443"), m("10.0.0.3:6443"))); err != nil {
		t.Fatalf("a single conflict must be retried: %v", err)
	}
	ep, _ := get(t, c)
	if conflicts != 2 || len(addrs(ep.Subsets)) != 2 {
		t.Fatalf("%d update attempts, Endpoints %v", conflicts, addrs(ep.Subsets))
	}
}

func TestRunAnnouncesAndWithdraws(t *testing.T) {
	c := fakeapi.New()
	other := m("10.0.0.1:6443")
	leases := newLeases(other)
	self := m("10.0.0.2:6443")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Config{Client: c, Leases: leases, Self: self, Interval: 10 * time.Millisecond})
	}()
	waitAddrs(t, c, []string{"10.0.0.1:6443", "10.0.0.2:6443"})
	// The other master's lease expires: dropped on a later tick.
	_ = leases.Remove(ctx, other)
	waitAddrs(t, c, []string{"10.0.0.2:6443"})
	_ = leases.Renew(ctx, other, time.Minute)
	waitAddrs(t, c, []string{"10.0.0.1:6443", "10.0.0.2:6443"})
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	ep, _ := get(t, c)
	if a := addrs(ep.Subsets); !slices.Equal(a, []string{"10.0.0.1:6443"}) {
		t.Fatalf("after stopping, Endpoints %v, want only the other master", a)
	}
	if l, _ := leases.List(context.Background()); !slices.Equal(l, []Master{other}) {
		t.Fatalf("leases after stopping %v", l)
	}
}

func waitAddrs(t *testing.T, c *fake.Clientset, want []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ep, err := c.CoreV1().Endpoints("default").Get(context.Background(), "kubernetes", metav1.GetOptions{})
		var got []string
		if err == nil {
			got = addrs(ep.Subsets)
			if slices.Equal(got, want) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Endpoints %v (err %v), want %v", got, err, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
