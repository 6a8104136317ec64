package leaderelection

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/hoist-project/hoist/internal/testenv"
)

func lockFor(client kubernetes.Interface, id string) resourcelock.Interface {
	return &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: "kube-system", Name: "hoist-test"},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
}

// Two candidates: exactly one leads at a time; when the leader's work ends
// it releases the Lease and the other takes over well before LeaseDuration.
func TestOneLeaderAndHandover(t *testing.T) {
	client := fake.NewClientset()
	var leading atomic.Int32
	var maxLeading atomic.Int32
	stopA := make(chan struct{})
	started := make(chan string, 2)
	campaign := func(id string, stop <-chan struct{}) chan error {
		errc := make(chan error, 1)
		go func() {
			errc <- Run(context.Background(), Config{
				Lock: lockFor(client, id), LeaseDuration: 5 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 50 * time.Millisecond,
				OnStartedLeading: func(ctx context.Context) {
					n := leading.Add(1)
					for m := maxLeading.Load(); n > m && !maxLeading.CompareAndSwap(m, n); m = maxLeading.Load() {
					}
					started <- id
					select {
					case <-ctx.Done():
					case <-stop:
					}
					leading.Add(-1)
				},
			})
		}()
		return errc
	}
	errA := campaign("a", stopA)
	first := <-started
	if first != "a" {
		t.Fatalf("first leader = %s, want a", first)
	}
	stopB := make(chan struct{})
	defer close(stopB)
	campaign("b", stopB)
	handover := time.Now()
	close(stopA)
	if err := <-errA; err != nil {
		t.Fatalf("a: %v", err)
	}
	if second := <-started; second != "b" {
		t.Fatalf("second leader = %s, want b", second)
	}
	if d := time.Since(handover); d >= 5*time.Second {
		t.Fatalf("handover took %v: the released lease should not wait for LeaseDuration", d)
	}
	if m := maxLeading.Load(); m != 1 {
		t.Fatalf("%d candidates led at once", m)
	}
	lease, err := client.CoordinationV1().Leases("kube-system").Get(context.Background(), "hoist-test", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "b" {
		t.Fatalf("lease holder after handover: %+v, %v", lease.Spec.HolderIdentity, err)
	}
}

// A leader whose lease is taken over (renewals fail) stops leading.
func TestLostLeaseEndsLeadership(t *testing.T) {
	client := fake.NewClientset()
	var lost atomic.Bool
	errc := make(chan error, 1)
	var leading atomic.Bool
	go func() {
		errc <- Run(context.Background(), Config{
			Lock: lockFor(client, "a"), LeaseDuration: 2 * time.Second, RenewDeadline: 500 * time.Millisecond, RetryPeriod: 50 * time.Millisecond,
			OnStartedLeading: func(ctx context.Context) {
				leading.Store(true)
				<-ctx.Done()
				lost.Store(true)
			},
		})
	}()
	testenv.WaitUntil(t, 10*time.Second, "a to lead", leading.Load)
	// Another identity overwrites the record with a far-future lease; a's
	// updates now fail the holder check and its renewals time out.
	other := lockFor(client, "intruder")
	now := metav1.Now()
	testenv.WaitUntil(t, 10*time.Second, "intruder update", func() bool {
		if _, _, err := other.Get(context.Background()); err != nil {
			return false
		}
		return other.Update(context.Background(), resourcelock.LeaderElectionRecord{
			HolderIdentity: "intruder", LeaseDurationSeconds: 3600, AcquireTime: now, RenewTime: now}) == nil
	})
	testenv.WaitUntil(t, 10*time.Second, "a to give up", lost.Load)
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestBadTimingsRefused(t *testing.T) {
	err := Run(context.Background(), Config{Lock: lockFor(fake.NewClientset(), "a"),
		LeaseDuration: time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: time.Millisecond,
		OnStartedLeading: func(context.Context) {}})
	if err == nil {
		t.Fatal("renewDeadline > leaseDuration accepted")
	}
}
