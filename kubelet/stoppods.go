package kubelet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hoist-project/hoist/kubelet/runtime"
)

// DefaultStopPodsTimeout bounds the stop-all of Config.StopPods.
const DefaultStopPodsTimeout = 45 * time.Second

// stopPodFunc stops one pod with its grace capped at maxGrace
// (podsync.Syncer.StopPod).
type stopPodFunc func(ctx context.Context, pod *v1.Pod, maxGrace time.Duration) error

// podLister is what the stop-all needs from the runtime.
type podLister interface {
	ListPodRefs(ctx context.Context) (map[types.UID]runtime.PodRef, error)
}

// stopGrace is the longest grace a pod gets when everything has to be done
// within timeout: SIGKILL comes early enough to leave time for the
// teardown (CNI DEL, netns, cgroup) of all pods at once.
func stopGrace(timeout time.Duration) time.Duration {
	return timeout - min(10*time.Second, timeout/2)
}

// stopAllPods stops every pod the kubelet runs, all in parallel and within
// timeout: the pods it has workers for with their latest spec (preStop
// hooks, terminationGracePeriodSeconds, capped by stopGrace), and any other
// pod the runtime holds (by its labels). It runs after the workers have
// returned, so nothing starts a container meanwhile. API objects are left
// alone. It returns which pods could not be stopped.
func stopAllPods(log *slog.Logger, rt podLister, stop stopPodFunc, known []*v1.Pod, timeout time.Duration) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	pods := make(map[types.UID]*v1.Pod, len(known))
	for _, p := range known {
		pods[p.UID] = p
	}
	refs, err := rt.ListPodRefs(ctx)
	if err != nil {
		return fmt.Errorf("stop pods: %w", err)
	}
	for uid, ref := range refs {
		if _, ok := pods[uid]; !ok {
			orphan := &v1.Pod{}
			orphan.UID, orphan.Name, orphan.Namespace = uid, ref.Name, ref.Namespace
			pods[uid] = orphan
		}
	}
	maxGrace := stopGrace(timeout)
	log.Info("stopping all pods", "pods", len(pods), "timeout", timeout, "maxGrace", maxGrace)
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, pod := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := stop(ctx, pod, maxGrace); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("stop pods: %d of %d not stopped within %s: %w", len(errs), len(pods), timeout, errors.Join(errs...))
	}
	log.Info("all pods stopped", "pods", len(pods), "took", time.Since(start).Round(time.Millisecond))
	return nil
}
