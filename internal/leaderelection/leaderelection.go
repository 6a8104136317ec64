// Package leaderelection elects one holder of a coordination Lease among
// processes sharing an API server, the way client-go's leader elector does
// (same Lease record, same timings, so upstream tools read it), without
// client-go's elector package: that one also builds the coordinated
// leader election candidates and with them an informer for every API group,
// which costs hoist's build more than this whole file.
package leaderelection

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/clock"
)

// Config of an election.
type Config struct {
	Lock resourcelock.Interface
	// LeaseDuration is how long others wait after the last renewal they
	// observed before taking over; RenewDeadline is how long the leader
	// keeps retrying a failing renewal before it gives up; RetryPeriod is
	// the interval between attempts. LeaseDuration > RenewDeadline > RetryPeriod.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// OnStartedLeading runs once leadership is acquired; its context ends
	// when leadership is lost or Run's context ends.
	OnStartedLeading func(ctx context.Context)
	Clock            clock.Clock // default: the real clock
}

// Run campaigns until it leads, runs OnStartedLeading and keeps renewing
// until renewal fails for RenewDeadline or ctx ends; then it waits for
// OnStartedLeading to return and releases the Lease (so the next holder
// need not wait LeaseDuration) and returns.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Lock == nil || cfg.OnStartedLeading == nil {
		return errors.New("leader election needs a lock and an OnStartedLeading callback")
	}
	if !(cfg.LeaseDuration > cfg.RenewDeadline && cfg.RenewDeadline > cfg.RetryPeriod && cfg.RetryPeriod > 0) {
		return fmt.Errorf("leader election timings: need leaseDuration (%v) > renewDeadline (%v) > retryPeriod (%v) > 0",
			cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	e := &elector{cfg: cfg}
	if !e.acquire(ctx) {
		return nil
	}
	leadCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		cfg.OnStartedLeading(leadCtx)
	}()
	e.renew(leadCtx, done)
	cancel()
	<-done
	e.release()
	return nil
}

type elector struct {
	cfg          Config
	observed     []byte    // the record as last read
	observedTime time.Time // when it last changed, by our clock
}

// acquire retries until this process holds the Lease or ctx ends.
func (e *elector) acquire(ctx context.Context) bool {
	acquired := false
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	wait.JitterUntil(func() {
		if e.tryAcquireOrRenew(actx) {
			acquired = true
			cancel()
		}
	}, e.cfg.RetryPeriod, 1.2, true, actx.Done())
	return acquired
}

// renew keeps the Lease until a renewal has failed for RenewDeadline, ctx
// ends, or the leader's work returns (done).
func (e *elector) renew(ctx context.Context, done <-chan struct{}) {
	for {
		deadline, cancel := context.WithTimeout(ctx, e.cfg.RenewDeadline)
		err := wait.PollUntilContextTimeout(deadline, e.cfg.RetryPeriod, e.cfg.RenewDeadline, true,
			func(c context.Context) (bool, error) { return e.tryAcquireOrRenew(c), nil })
		cancel()
		if err != nil {
			return // deadline passed without a renewal, or ctx ended
		}
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-e.cfg.Clock.After(e.cfg.RetryPeriod):
		}
	}
}

// tryAcquireOrRenew takes the Lease if it is free, expired or ours.
func (e *elector) tryAcquireOrRenew(ctx context.Context) bool {
	now := metav1.NewTime(e.cfg.Clock.Now())
	me := e.cfg.Lock.Identity()
	rec := resourcelock.LeaderElectionRecord{
		HolderIdentity:       me,
		LeaseDurationSeconds: int(e.cfg.LeaseDuration / time.Second),
		RenewTime:            now,
		AcquireTime:          now,
	}
	old, raw, err := e.cfg.Lock.Get(ctx)
	if apierrors.IsNotFound(err) {
		if e.cfg.Lock.Create(ctx, rec) != nil {
			return false
		}
		e.observe(rec)
		return true
	}
	if err != nil {
		return false
	}
	if !bytes.Equal(raw, e.observed) {
		e.observed, e.observedTime = raw, e.cfg.Clock.Now()
	}
	held := old.HolderIdentity != ""
	if held && old.HolderIdentity != me &&
		e.observedTime.Add(time.Duration(old.LeaseDurationSeconds)*time.Second).After(e.cfg.Clock.Now()) {
		return false // someone else holds an unexpired lease
	}
	if old.HolderIdentity == me {
		rec.AcquireTime, rec.LeaderTransitions = old.AcquireTime, old.LeaderTransitions
	} else {
		rec.LeaderTransitions = old.LeaderTransitions + 1
	}
	if e.cfg.Lock.Update(ctx, rec) != nil {
		return false
	}
	e.observe(rec)
	return true
}

func (e *elector) observe(rec resourcelock.LeaderElectionRecord) {
	e.observed, _ = json.Marshal(rec)
	e.observedTime = e.cfg.Clock.Now()
}

// release hands the Lease back (empty holder, 1 s duration) if still ours.
func (e *elector) release() {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.RenewDeadline)
	defer cancel()
	old, _, err := e.cfg.Lock.Get(ctx)
	if err != nil || old.HolderIdentity != e.cfg.Lock.Identity() {
		return
	}
	now := metav1.NewTime(e.cfg.Clock.Now())
	_ = e.cfg.Lock.Update(ctx, resourcelock.LeaderElectionRecord{
		LeaderTransitions:    old.LeaderTransitions,
		LeaseDurationSeconds: 1,
		RenewTime:            now,
		AcquireTime:          now,
	})
}
