package kubelet

import (
	"context"
	"log/slog"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/remotes/docker"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"

	"github.com/hoist-project/hoist/kubelet/images"
)

// newImageManager builds the image manager: pull secrets come from the API
// (none without one), events go to the API's recorder.
func newImageManager(cfg Config, client *containerd.Client, events record.EventRecorder, log *slog.Logger) (*images.Manager, error) {
	icfg := images.Config{
		Client: client, Namespace: cfg.ContainerdNamespace, Log: log,
		MaxPullsPerRegistry: cfg.MaxPullsPerRegistry, Backoff: cfg.ImagePullBackoff,
		PlainHTTP: plainHTTP(cfg.InsecureRegistries),
	}
	if events != nil {
		icfg.Events = events
	}
	if cfg.Client != nil {
		icfg.Secrets = func(ctx context.Context, namespace, name string) (*v1.Secret, error) {
			return cfg.Client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		}
	}
	return images.New(icfg)
}

// plainHTTP: localhost and loopback, plus the configured insecure registries.
func plainHTTP(insecure []string) func(string) (bool, error) {
	set := map[string]bool{}
	for _, h := range insecure {
		set[h] = true
	}
	return func(host string) (bool, error) {
		if set[host] {
			return true, nil
		}
		return docker.MatchLocalhost(host)
	}
}

// runImageGC garbage-collects images every period until ctx ends.
func runImageGC(ctx context.Context, log *slog.Logger, m *images.Manager, p images.GCPolicy, period time.Duration, pinned map[string]bool) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := m.GarbageCollect(ctx, p, pinned); err != nil && ctx.Err() == nil {
			log.Warn("image garbage collection failed", "err", err)
		}
	}
}
