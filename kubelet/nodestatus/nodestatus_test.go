package nodestatus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
)

type fakeMachine struct {
	mu sync.Mutex
	u  Usage
}

func (f *fakeMachine) Info() (MachineInfo, error) {
	return MachineInfo{CPUs: 4, MemoryBytes: 8 << 30, DiskBytes: 100 << 30, KernelVersion: "6.18.0", OSImage: "Debian GNU/Linux 12 (bookworm)", OS: "linux", Arch: "amd64"}, nil
}

func (f *fakeMachine) Usage() (Usage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.u, nil
}

func (f *fakeMachine) set(u Usage) { f.mu.Lock(); f.u = u; f.mu.Unlock() }

func healthy() Usage {
	return Usage{MemoryAvailable: 4 << 30, DiskAvailable: 50 << 30, PIDs: 300, PIDMax: 4194304}
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type netState struct {
	mu  sync.Mutex
	err error
}

func (n *netState) ready() error  { n.mu.Lock(); defer n.mu.Unlock(); return n.err }
func (n *netState) set(err error) { n.mu.Lock(); n.err = err; n.mu.Unlock() }

func newManager(t *testing.T, client *fake.Clientset, clk *clocktesting.FakeClock, m *fakeMachine, netw *netState) *Manager {
	t.Helper()
	mgr, err := New(Config{
		Client: client, NodeName: "n1", NodeIP: "10.1.2.3", KubeletVersion: "v1.32.0-hoist",
		Labels:  map[string]string{"role": "db"},
		Taints:  []v1.Taint{{Key: "dedicated", Value: "db", Effect: v1.TaintEffectNoSchedule}},
		Machine: m, NetworkReady: netw.ready, Clock: clk,
		RuntimeVersion: func(context.Context) (string, error) { return "1.6.20", nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return mgr
}

func condition(n *v1.Node, t v1.NodeConditionType) v1.NodeCondition {
	for _, c := range n.Status.Conditions {
		if c.Type == t {
			return c
		}
	}
	return v1.NodeCondition{}
}

func TestRegistrationContent(t *testing.T) {
	client := fake.NewClientset()
	mgr := newManager(t, client, clocktesting.NewFakeClock(t0), &fakeMachine{u: healthy()}, &netState{})
	ctx := context.Background()
	if err := mgr.Register(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"kubernetes.io/hostname": "n1", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "role": "db"} {
		if n.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, n.Labels[k], v)
		}
	}
	if len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Key != "dedicated" {
		t.Errorf("taints = %v", n.Spec.Taints)
	}
	if len(n.Status.Addresses) != 2 || n.Status.Addresses[0] != (v1.NodeAddress{Type: v1.NodeInternalIP, Address: "10.1.2.3"}) {
		t.Errorf("addresses = %v", n.Status.Addresses)
	}
	want := map[v1.ResourceName]string{"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi", "pods": "110"}
	for r, q := range want {
		if c := n.Status.Capacity[r]; c.String() != q {
			t.Errorf("capacity %s = %s, want %s", r, c.String(), q)
		}
		if a := n.Status.Allocatable[r]; a.String() != q {
			t.Errorf("allocatable %s = %s, want %s", r, a.String(), q)
		}
	}
	ni := n.Status.NodeInfo
	if ni.ContainerRuntimeVersion != "containerd://1.6.20" || ni.KubeletVersion != "v1.32.0-hoist" || ni.KernelVersion != "6.18.0" || ni.OSImage != "Debian GNU/Linux 12 (bookworm)" {
		t.Errorf("nodeInfo = %+v", ni)
	}
	if c := condition(n, v1.NodeReady); c.Status != v1.ConditionTrue || c.Reason != "KubeletReady" {
		t.Errorf("Ready = %+v", c)
	}
	// A restarted kubelet with a new flag label adds it, keeping others.
	n.Labels["keep"] = "me"
	if _, err := client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	mgr.cfg.Labels["zone"] = "a"
	if err := mgr.Register(ctx); err != nil {
		t.Fatal(err)
	}
	n, _ = client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if n.Labels["zone"] != "a" || n.Labels["keep"] != "me" {
		t.Errorf("labels after re-registration: %v", n.Labels)
	}
}

func TestConditionReasons(t *testing.T) {
	client := fake.NewClientset()
	clk := clocktesting.NewFakeClock(t0)
	m := &fakeMachine{u: Usage{MemoryAvailable: 50 << 20, DiskAvailable: 5 << 30, PIDs: 4000, PIDMax: 4096}}
	netw := &netState{err: errors.New("network plugin not ready: no CNI configuration in /etc/cni/net.d")}
	mgr := newManager(t, client, clk, m, netw)
	ctx := context.Background()
	if err := mgr.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mgr.SyncStatus(ctx); err != nil {
		t.Fatal(err)
	}
	n, _ := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	ready := condition(n, v1.NodeReady)
	if ready.Status != v1.ConditionFalse || ready.Reason != "KubeletNotReady" || ready.Message != "network plugin not ready: no CNI configuration in /etc/cni/net.d" {
		t.Errorf("Ready = %+v", ready)
	}
	for typ, reason := range map[v1.NodeConditionType]string{
		v1.NodeMemoryPressure: "KubeletHasInsufficientMemory", v1.NodeDiskPressure: "KubeletHasDiskPressure", v1.NodePIDPressure: "KubeletHasInsufficientPID",
	} {
		if c := condition(n, typ); c.Status != v1.ConditionTrue || c.Reason != reason || c.Message == "" {
			t.Errorf("%s = %+v, want True/%s with a message", typ, c, reason)
		}
	}
	// Fixed: the conditions flip, with a new transition time.
	netw.set(nil)
	m.set(healthy())
	clk.Step(time.Minute)
	if err := mgr.SyncStatus(ctx); err != nil {
		t.Fatal(err)
	}
	n, _ = client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if c := condition(n, v1.NodeReady); c.Status != v1.ConditionTrue || !c.LastTransitionTime.Time.Equal(t0.Add(time.Minute)) {
		t.Errorf("Ready after the fix = %+v", c)
	}
	if c := condition(n, v1.NodeMemoryPressure); c.Status != v1.ConditionFalse || c.Reason != "KubeletHasSufficientMemory" {
		t.Errorf("MemoryPressure after the fix = %+v", c)
	}
}

func countStatusWrites(client *fake.Clientset) int {
	n := 0
	for _, a := range client.Actions() {
		if a.GetVerb() == "update" && a.GetResource().Resource == "nodes" && a.GetSubresource() == "status" {
			n++
		}
	}
	return n
}

func TestStatusOnlyOnChangeOrInterval(t *testing.T) {
	client := fake.NewClientset()
	clk := clocktesting.NewFakeClock(t0)
	netw := &netState{}
	mgr := newManager(t, client, clk, &fakeMachine{u: healthy()}, netw)
	ctx := context.Background()
	if err := mgr.Register(ctx); err != nil {
		t.Fatal(err)
	}
	mgr.SyncStatus(ctx)
	for i := 0; i < 5; i++ {
		clk.Step(10 * time.Second)
		mgr.SyncStatus(ctx)
	}
	if n := countStatusWrites(client); n != 1 {
		t.Fatalf("%d status writes without change within 5 min, want 1", n)
	}
	netw.set(errors.New("network plugin not ready: x"))
	mgr.SyncStatus(ctx)
	if n := countStatusWrites(client); n != 2 {
		t.Fatalf("%d status writes after a change, want 2", n)
	}
	clk.Step(5 * time.Minute)
	mgr.SyncStatus(ctx)
	if n := countStatusWrites(client); n != 3 {
		t.Fatalf("%d status writes after 5 min, want 3", n)
	}
}

func TestLeaseRenewedEveryTenSeconds(t *testing.T) {
	client := fake.NewClientset()
	clk := clocktesting.NewFakeClock(t0)
	mgr := newManager(t, client, clk, &fakeMachine{u: healthy()}, &netState{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Run(ctx) }()
	defer func() { cancel(); <-done }()
	renewTime := func() (time.Time, error) {
		l, err := client.CoordinationV1().Leases(LeaseNamespace).Get(context.Background(), "n1", metav1.GetOptions{})
		if err != nil {
			return time.Time{}, err
		}
		if *l.Spec.HolderIdentity != "n1" || *l.Spec.LeaseDurationSeconds != 40 {
			return time.Time{}, fmt.Errorf("lease spec %+v", l.Spec)
		}
		return l.Spec.RenewTime.Time, nil
	}
	waitRenew := func(want time.Time) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, err := renewTime()
			if err == nil && got.Equal(want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("lease renew time = %v (%v), want %v", got, err, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitRenew(t0)
	for i := 1; i <= 3; i++ {
		deadline := time.Now().Add(5 * time.Second)
		for !clk.HasWaiters() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		clk.Step(10 * time.Second)
		waitRenew(t0.Add(time.Duration(i) * 10 * time.Second))
	}
}

func TestHostMachine(t *testing.T) {
	dir := t.TempDir()
	etc := filepath.Join(dir, "etc")
	os.MkdirAll(etc, 0o755)
	os.WriteFile(filepath.Join(etc, "os-release"), []byte("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"), 0o644)
	h := Host{RootDir: dir, Etc: etc}
	mi, err := h.Info()
	if err != nil {
		t.Fatal(err)
	}
	if mi.OSImage != "Debian GNU/Linux 12 (bookworm)" || mi.MemoryBytes <= 0 || mi.DiskBytes <= 0 || mi.CPUs <= 0 || mi.KernelVersion == "" {
		t.Fatalf("machine info = %+v", mi)
	}
	u, err := h.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if u.MemoryAvailable <= 0 || u.DiskAvailable <= 0 || u.PIDs <= 0 || u.PIDMax <= 0 {
		t.Fatalf("usage = %+v", u)
	}
	if _, err := (Host{RootDir: filepath.Join(dir, "missing")}).Info(); err == nil {
		t.Fatal("no error for a missing root dir")
	}
}

// The CNI config appearing must be posted within the readiness poll (1 s),
// not at the next 10 s condition check.
func TestReadyPostedPromptlyWhenNetworkBecomesReady(t *testing.T) {
	client := fake.NewClientset()
	clk := clocktesting.NewFakeClock(t0)
	netw := &netState{err: errors.New("network plugin not ready: no CNI configuration in /etc/cni/net.d")}
	mgr := newManager(t, client, clk, &fakeMachine{u: healthy()}, netw)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitReady := func(want v1.ConditionStatus) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			n, err := client.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
			if err == nil && condition(n, v1.NodeReady).Status == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("node Ready never became %s (%v)", want, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitWaiter := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !clk.HasWaiters() {
			if time.Now().After(deadline) {
				t.Fatal("status loop never waited on the clock")
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitReady(v1.ConditionFalse)
	waitWaiter()
	clk.Step(time.Second) // a poll with nothing changed writes nothing new
	waitWaiter()
	netw.set(nil) // the CNI config appears
	clk.Step(time.Second)
	waitReady(v1.ConditionTrue)
	if elapsed := clk.Since(t0); elapsed >= 10*time.Second {
		t.Fatalf("Ready posted after %s of clock time, want before the 10 s condition period", elapsed)
	}
}
