package controllermanager

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/hoist-project/hoist/internal/leaderelection"
)

// LeaderConfig names the coordination Lease that elects one active master
// and its timings (client-go's defaults as upstream components use them).
type LeaderConfig struct {
	Namespace     string // default kube-system
	Name          string // e.g. kube-controller-manager, kube-scheduler
	Identity      string // unique per master process
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// ErrLostLeadership is returned when a leader stops renewing its Lease; the
// caller should exit (or re-run) so it never acts on stale leadership.
var ErrLostLeadership = errors.New("lost leadership")

// RunLeaderElected runs run while holding the Lease. It returns nil when
// ctx ends, ErrLostLeadership if the lease is lost, or run's error.
func RunLeaderElected(ctx context.Context, client kubernetes.Interface, cfg LeaderConfig, run func(ctx context.Context) error) error {
	if cfg.Name == "" || cfg.Identity == "" {
		return fmt.Errorf("leader election needs a lease name and an identity")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = metav1.NamespaceSystem
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod = 15*time.Second, 10*time.Second, 2*time.Second
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.Name},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}
	parent := ctx
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	runErr := make(chan error, 1)
	var led, ownEnd atomic.Bool
	// Run returns when ctx ends or renewal fails, after run has returned,
	// so two masters never act at once.
	err := leaderelection.Run(ctx, leaderelection.Config{
		Lock:          lock,
		LeaseDuration: cfg.LeaseDuration,
		RenewDeadline: cfg.RenewDeadline,
		RetryPeriod:   cfg.RetryPeriod,
		OnStartedLeading: func(leadCtx context.Context) {
			led.Store(true)
			err := run(leadCtx)
			ownEnd.Store(leadCtx.Err() == nil)
			runErr <- err
			cancel() // give the lease up
		},
	})
	if err != nil {
		return fmt.Errorf("leader election %s/%s: %w", cfg.Namespace, cfg.Name, err)
	}
	if !led.Load() {
		// Never led (or lost the lease before run started, in which case
		// run sees a cancelled context and returns at once).
		return nil
	}
	if err := <-runErr; err != nil {
		return err
	}
	if parent.Err() == nil && !ownEnd.Load() {
		return ErrLostLeadership
	}
	return nil
}
