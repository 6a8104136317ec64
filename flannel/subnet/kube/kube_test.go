package kube

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/hoist-project/hoist/flannel/config"
	"github.com/hoist-project/hoist/flannel/subnet"
	"github.com/hoist-project/hoist/internal/testenv"
)

type syncBuffer = testenv.SyncBuffer

func network(t *testing.T) config.Config {
	t.Helper()
	c, err := config.FromOptions(config.Options{Network: "10.244.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newManager(t *testing.T, client kubernetes.Interface, node string) (*Manager, *syncBuffer, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	logs := &syncBuffer{}
	m, err := New(ctx, client, node, network(t), slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return m, logs, ctx
}

func node(name, podCIDR string, ann map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}, Spec: corev1.NodeSpec{PodCIDR: podCIDR}}
}

// flannelNode is a node whose flanneld has published its lease.
func flannelNode(name, podCIDR, ip string) *corev1.Node {
	return node(name, podCIDR, map[string]string{
		AnnotationKubeManaged: "true", AnnotationPublicIP: ip, AnnotationBackendType: "vxlan",
		AnnotationBackendData: `{"VNI":1,"VtepMAC":"0e:00:00:00:00:01"}`,
	})
}

func vxlanAttrs(ip string) subnet.Attrs {
	return subnet.Attrs{PublicIP: netip.MustParseAddr(ip), BackendType: "vxlan", BackendData: json.RawMessage(`{"VNI":1,"VtepMAC":"0e:aa:bb:cc:dd:ee"}`)}
}

func TestAcquireLeaseWaitsForPodCIDRAndPublishes(t *testing.T) {
	client := fake.NewClientset()
	m, logs, ctx := newManager(t, client, "n1")
	type result struct {
		l   *subnet.Lease
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := m.AcquireLease(ctx, vxlanAttrs("192.0.2.1"), netip.Prefix{})
		done <- result{l, err}
	}()
	testenv.WaitUntil(t, 20*time.Second, "the not-registered message", func() bool { return strings.Contains(logs.String(), "node n1 is not registered in the API yet") })
	if _, err := client.CoreV1().Nodes().Create(ctx, node("n1", "", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitUntil(t, 20*time.Second, "the no-podCIDR message", func() bool {
		return strings.Contains(logs.String(), "node n1 has no spec.podCIDR yet: is the master's nodeipam controller running with --cluster-cidr 10.244.0.0/16?")
	})
	select {
	case r := <-done:
		t.Fatalf("AcquireLease returned before the podCIDR was assigned: %+v, %v", r.l, r.err)
	default:
	}
	if _, err := client.CoreV1().Nodes().Update(ctx, node("n1", "10.244.7.0/24", nil), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("AcquireLease did not return after the podCIDR was assigned")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.l.Subnet != netip.MustParsePrefix("10.244.7.0/24") || r.l.Attrs.NodeName != "n1" || r.l.Attrs.PublicIP.String() != "192.0.2.1" {
		t.Fatalf("lease %+v", r.l)
	}
	n, err := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		AnnotationKubeManaged: "true", AnnotationPublicIP: "192.0.2.1", AnnotationBackendType: "vxlan",
		AnnotationBackendData: `{"VNI":1,"VtepMAC":"0e:aa:bb:cc:dd:ee"}`,
	}
	for k, v := range want {
		if n.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, n.Annotations[k], v)
		}
	}
}

func TestAcquireLeaseRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes []*corev1.Node
		err   string
	}{
		{
			name:  "public IP of another node",
			nodes: []*corev1.Node{node("n1", "10.244.1.0/24", nil), flannelNode("n2", "10.244.2.0/24", "192.0.2.1")},
			err:   "nodes n2 and n1 both claim public IP 192.0.2.1",
		},
		{
			name:  "podCIDR outside the network",
			nodes: []*corev1.Node{node("n1", "10.99.1.0/24", nil)},
			err:   "node n1: spec.podCIDR 10.99.1.0/24 is outside the flannel network 10.244.0.0/16",
		},
		{
			name:  "bad overwrite annotation",
			nodes: []*corev1.Node{node("n1", "10.244.1.0/24", map[string]string{AnnotationPublicIPOverwrite: "x"})},
			err:   `annotation flannel.alpha.coreos.com/public-ip-overwrite="x" is not an IPv4 address`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset()
			for _, n := range tc.nodes {
				if _, err := client.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			m, _, ctx := newManager(t, client, "n1")
			_, err := m.AcquireLease(ctx, vxlanAttrs("192.0.2.1"), netip.Prefix{})
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}

func TestAcquireLeaseHonoursPublicIPOverwrite(t *testing.T) {
	client := fake.NewClientset(node("n1", "10.244.1.0/24", map[string]string{AnnotationPublicIPOverwrite: "203.0.113.9"}))
	m, _, ctx := newManager(t, client, "n1")
	l, err := m.AcquireLease(ctx, vxlanAttrs("192.0.2.1"), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs.PublicIP.String() != "203.0.113.9" {
		t.Fatalf("lease public IP %s, want the overwrite 203.0.113.9", l.Attrs.PublicIP)
	}
	n, _ := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if got := n.Annotations[AnnotationPublicIP]; got != "203.0.113.9" {
		t.Fatalf("published public-ip %q, want 203.0.113.9", got)
	}
}

func TestRenewLease(t *testing.T) {
	client := fake.NewClientset(node("n1", "10.244.1.0/24", nil))
	m, _, ctx := newManager(t, client, "n1")
	l, err := m.AcquireLease(ctx, vxlanAttrs("192.0.2.1"), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	// Someone strips the annotations: renewal puts them back.
	if _, err := client.CoreV1().Nodes().Update(ctx, node("n1", "10.244.1.0/24", nil), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitUntil(t, 20*time.Second, "the informer to see the stripped node", func() bool {
		n, _ := m.nodes.Get("n1")
		return n != nil && len(n.Annotations) == 0
	})
	if err := m.RenewLease(ctx, l); err != nil {
		t.Fatal(err)
	}
	n, _ := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if n.Annotations[AnnotationKubeManaged] != "true" {
		t.Fatalf("renewal did not re-publish the annotations: %v", n.Annotations)
	}
	// The podCIDR changed: the lease is gone.
	if _, err := client.CoreV1().Nodes().Update(ctx, node("n1", "10.244.2.0/24", nil), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitUntil(t, 20*time.Second, "the informer to see the new podCIDR", func() bool {
		n, _ := m.nodes.Get("n1")
		return n != nil && n.Spec.PodCIDR == "10.244.2.0/24"
	})
	if err := m.RenewLease(ctx, l); !errors.Is(err, subnet.ErrLeaseGone) {
		t.Fatalf("renew after podCIDR change: %v, want ErrLeaseGone", err)
	}
	if err := client.CoreV1().Nodes().Delete(ctx, "n1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitUntil(t, 20*time.Second, "the informer to see the deletion", func() bool { _, err := m.nodes.Get("n1"); return err != nil })
	if err := m.RenewLease(ctx, l); !errors.Is(err, subnet.ErrLeaseGone) {
		t.Fatalf("renew after node deletion: %v, want ErrLeaseGone", err)
	}
}

func TestWatchLeases(t *testing.T) {
	client := fake.NewClientset(
		flannelNode("n1", "10.244.1.0/24", "192.0.2.1"),
		flannelNode("n2", "10.244.2.0/24", "192.0.2.2"),
		node("n3", "10.244.3.0/24", nil), // no flanneld yet: no lease
	)
	m, _, ctx := newManager(t, client, "n1")
	out := make(chan subnet.Batch, 10)
	go func() { _ = m.WatchLeases(ctx, out) }()
	next := func() map[string]string {
		t.Helper()
		select {
		case b := <-out:
			if !b.Snapshot {
				t.Fatalf("batch is not a snapshot: %+v", b)
			}
			got := map[string]string{}
			for _, e := range b.Events {
				got[e.Lease.Subnet.String()] = e.Lease.Attrs.NodeName + "@" + e.Lease.Attrs.PublicIP.String()
			}
			return got
		case <-time.After(20 * time.Second):
			t.Fatal("no lease batch within 20s")
		}
		return nil
	}
	expect := func(got map[string]string, want ...string) {
		t.Helper()
		if len(got) != len(want)/2 {
			t.Fatalf("leases %v, want %v", got, want)
		}
		for i := 0; i < len(want); i += 2 {
			if got[want[i]] != want[i+1] {
				t.Fatalf("leases %v, want %v", got, want)
			}
		}
	}
	expect(next(), "10.244.1.0/24", "n1@192.0.2.1", "10.244.2.0/24", "n2@192.0.2.2")

	// A status-only change (kubelet heartbeat) sends nothing; the next real
	// change is the next batch.
	n2, _ := client.CoreV1().Nodes().Get(ctx, "n2", metav1.GetOptions{})
	n2.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, n2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Nodes().Update(ctx, flannelNode("n3", "10.244.3.0/24", "192.0.2.3"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(next(), "10.244.1.0/24", "n1@192.0.2.1", "10.244.2.0/24", "n2@192.0.2.2", "10.244.3.0/24", "n3@192.0.2.3")

	if err := client.CoreV1().Nodes().Delete(ctx, "n2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(next(), "10.244.1.0/24", "n1@192.0.2.1", "10.244.3.0/24", "n3@192.0.2.3")
}

func TestLeaseOf(t *testing.T) {
	n := flannelNode("n1", "10.244.1.0/24", "192.0.2.1")
	l, ok := leaseOf(n)
	if !ok || l.Subnet.String() != "10.244.1.0/24" || string(l.Attrs.BackendData) != `{"VNI":1,"VtepMAC":"0e:00:00:00:00:01"}` {
		t.Fatalf("lease %+v ok=%v", l, ok)
	}
	n.Annotations[AnnotationPublicIPOverwrite] = "203.0.113.1"
	if l, _ := leaseOf(n); l.Attrs.PublicIP.String() != "203.0.113.1" {
		t.Fatalf("overwrite not honoured: %s", l.Attrs.PublicIP)
	}
	for name, mut := range map[string]func(*corev1.Node){
		"not kube managed": func(n *corev1.Node) { delete(n.Annotations, AnnotationKubeManaged) },
		"no podCIDR":       func(n *corev1.Node) { n.Spec.PodCIDR = "" },
		"bad public IP":    func(n *corev1.Node) { n.Annotations[AnnotationPublicIP] = "nope" },
	} {
		n := flannelNode("n1", "10.244.1.0/24", "192.0.2.1")
		mut(n)
		if _, ok := leaseOf(n); ok {
			t.Errorf("%s: got a lease", name)
		}
	}
}
