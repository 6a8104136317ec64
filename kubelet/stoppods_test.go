package kubelet

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hoist-project/hoist/kubelet/runtime"
)

type fakeLister map[types.UID]runtime.PodRef

func (f fakeLister) ListPodRefs(context.Context) (map[types.UID]runtime.PodRef, error) { return f, nil }

func TestStopAllPodsStopsKnownAndRuntimePods(t *testing.T) {
	known := &v1.Pod{}
	known.UID, known.Name, known.Namespace = "u1", "web", "default"
	g := int64(7)
	known.Spec.TerminationGracePeriodSeconds = &g
	rt := fakeLister{
		"u1": {UID: "u1", Name: "web", Namespace: "default"},
		"u2": {UID: "u2", Name: "left", Namespace: "kube-system"}, // no worker: from the labels
	}
	var mu sync.Mutex
	stopped := map[types.UID]*v1.Pod{}
	var graces []time.Duration
	stop := func(ctx context.Context, pod *v1.Pod, maxGrace time.Duration) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("stop without a deadline")
		}
		mu.Lock()
		defer mu.Unlock()
		stopped[pod.UID] = pod
		graces = append(graces, maxGrace)
		return nil
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := stopAllPods(log, rt, stop, []*v1.Pod{known}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if len(stopped) != 2 || stopped["u1"] != known || stopped["u2"].Name != "left" || stopped["u2"].Namespace != "kube-system" {
		t.Fatalf("stopped %v, want the known pod with its spec and the runtime's other pod", stopped)
	}
	for _, g := range graces {
		if g != 20*time.Second {
			t.Fatalf("max grace %s, want 20s (30s minus 10s for teardown)", g)
		}
	}
}

func TestStopAllPodsReportsFailures(t *testing.T) {
	rt := fakeLister{"u1": {UID: "u1", Name: "a", Namespace: "ns"}, "u2": {UID: "u2", Name: "b", Namespace: "ns"}}
	stop := func(_ context.Context, pod *v1.Pod, _ time.Duration) error {
		if pod.Name == "b" {
			return errors.New("cni del failed")
		}
		return nil
	}
	err := stopAllPods(slog.New(slog.NewTextHandler(io.Discard, nil)), rt, stop, nil, 4*time.Second)
	if err == nil || !strings.Contains(err.Error(), "1 of 2 not stopped within 4s") || !strings.Contains(err.Error(), "pod ns/b: cni del failed") {
		t.Fatalf("err = %v", err)
	}
}

func TestStopGraceLeavesTimeForTeardown(t *testing.T) {
	for timeout, want := range map[time.Duration]time.Duration{
		45 * time.Second: 35 * time.Second, 10 * time.Second: 5 * time.Second, 2 * time.Second: time.Second,
	} {
		if got := stopGrace(timeout); got != want {
			t.Errorf("stopGrace(%s) = %s, want %s", timeout, got, want)
		}
	}
}
