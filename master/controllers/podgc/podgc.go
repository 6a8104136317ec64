// Package podgc force-deletes pods nobody else will ever finish: pods bound
// to a Node that no longer exists (no kubelet will acknowledge their
// deletion or run them, yet they hold their controller's replica count
// and names), and terminating pods that were never scheduled. Like
// upstream's pod garbage collector, a node missing from the cache is
// confirmed missing with a live read before its pods go.
package podgc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hoist-project/hoist/internal/informers"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Config of the collector.
type Config struct {
	Period time.Duration // between passes (upstream's 20 s)
}

// Controller is the pod garbage collector.
type Controller struct {
	client kubernetes.Interface
	cfg    Config
	pods   listersv1.PodLister
	nodes  listersv1.NodeLister
	synced []cache.InformerSynced
}

// New returns the collector.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config) *Controller {
	if cfg.Period <= 0 {
		cfg.Period = 20 * time.Second
	}
	podInf, nodeInf := factory.Core().V1().Pods(), factory.Core().V1().Nodes()
	return &Controller{client: client, cfg: cfg, pods: podInf.Lister(), nodes: nodeInf.Lister(),
		synced: []cache.InformerSynced{podInf.Informer().HasSynced, nodeInf.Informer().HasSynced}}
}

// Run collects every Period until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return nil
	}
	t := time.NewTicker(c.cfg.Period)
	defer t.Stop()
	for {
		if err := c.Collect(ctx); err != nil && ctx.Err() == nil {
			slog.Warn("pod garbage collection incomplete", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Doomed picks the pods to force-delete: bound to a node for which gone
// returns true, or terminating without ever being scheduled.
func Doomed(pods []*corev1.Pod, gone func(node string) bool) []*corev1.Pod {
	var out []*corev1.Pod
	verdict := map[string]bool{} // one check per node per pass
	for _, p := range pods {
		node := p.Spec.NodeName
		if node == "" {
			if p.DeletionTimestamp != nil {
				out = append(out, p)
			}
			continue
		}
		g, ok := verdict[node]
		if !ok {
			g = gone(node)
			verdict[node] = g
		}
		if g {
			out = append(out, p)
		}
	}
	return out
}

// Collect is one pass.
func (c *Controller) Collect(ctx context.Context) error {
	pods, err := c.pods.List(labels.Everything())
	if err != nil {
		return err
	}
	var errs []error
	gone := func(node string) bool {
		if _, err := c.nodes.Get(node); err == nil {
			return false
		}
		// The cache may lag behind a node that registered a moment ago.
		_, err := c.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("check node %s: %w", node, err))
		}
		return apierrors.IsNotFound(err)
	}
	for _, p := range Doomed(pods, gone) {
		err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
			GracePeriodSeconds: new(int64), Preconditions: metav1.NewUIDPreconditions(string(p.UID))})
		switch {
		case err == nil:
			slog.Info("force-deleted orphaned pod", "pod", p.Namespace+"/"+p.Name, "node", p.Spec.NodeName)
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		default:
			errs = append(errs, fmt.Errorf("delete pod %s/%s: %w", p.Namespace, p.Name, err))
		}
	}
	return errors.Join(errs...)
}
