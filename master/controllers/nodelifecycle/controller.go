// Package nodelifecycle watches node heartbeats (Leases in
// kube-node-lease and the Ready condition's heartbeat): a node silent for
// longer than the grace period gets its conditions set to Unknown; nodes
// that are not Ready get node.kubernetes.io/not-ready or unreachable
// NoSchedule and NoExecute taints; pods on NoExecute-tainted nodes are
// evicted once their toleration runs out. All decisions are pure functions
// of the cached state and an injected clock (core.go); Tick applies them.
package nodelifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	coordlisters "k8s.io/client-go/listers/coordination/v1"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
)

// NodeLeaseNamespace holds the kubelets' heartbeat Leases.
const NodeLeaseNamespace = corev1.NamespaceNodeLease

const podsByNodeIndex = "hoist-nodelifecycle-by-node"

// Config of the controller. Zero values take upstream's defaults.
type Config struct {
	GracePeriod       time.Duration  // silence before Unknown (40s)
	MonitorPeriod     time.Duration  // how often Tick runs (5s)
	DefaultToleration time.Duration  // eviction delay for pods without a toleration (300s)
	Now               ctrlutil.Clock // default time.Now
}

// Controller is the node lifecycle controller.
type Controller struct {
	client   kubernetes.Interface
	cfg      Config
	nodes    listersv1.NodeLister
	leases   coordlisters.LeaseLister
	podIndex cache.Indexer
	synced   []cache.InformerSynced
	tracker  *Tracker
	recorder record.EventRecorder
}

// New returns the controller.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config) *Controller {
	if cfg.GracePeriod <= 0 {
		cfg.GracePeriod = 40 * time.Second
	}
	if cfg.MonitorPeriod <= 0 {
		cfg.MonitorPeriod = 5 * time.Second
	}
	if cfg.DefaultToleration <= 0 {
		cfg.DefaultToleration = 300 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	nodeInf := factory.Core().V1().Nodes()
	leaseInf := factory.Coordination().V1().Leases()
	podInf := factory.Core().V1().Pods()
	// Ignore the error: another controller may have added the same index.
	_ = podInf.Informer().AddIndexers(cache.Indexers{podsByNodeIndex: func(obj any) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			return []string{p.Spec.NodeName}, nil
		}
		return nil, nil
	}})
	return &Controller{
		client: client, cfg: cfg,
		nodes: nodeInf.Lister(), leases: leaseInf.Lister(), podIndex: podInf.Informer().GetIndexer(),
		synced:  []cache.InformerSynced{nodeInf.Informer().HasSynced, leaseInf.Informer().HasSynced, podInf.Informer().HasSynced},
		tracker: NewTracker(),
		// Replaced in Run; a discarding recorder keeps Tick usable alone.
		recorder: &record.FakeRecorder{},
	}
}

// Run calls Tick every MonitorPeriod until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	c.recorder = ctrlutil.NewRecorder(ctx, c.client, "node-controller")
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return nil // WaitForCacheSync only gives up when ctx ends: a shutdown, not an error
	}
	t := time.NewTicker(c.cfg.MonitorPeriod)
	defer t.Stop()
	for {
		// Every pass is level-triggered: a failed write is retried on
		// the next one.
		if err := c.Tick(ctx); err != nil && ctx.Err() == nil {
			slog.Warn("node lifecycle pass incomplete", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick is one monitoring pass over every node at the controller's clock.
func (c *Controller) Tick(ctx context.Context) error {
	now := c.cfg.Now()
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	live := map[string]bool{}
	var errs []error
	for _, node := range nodes {
		live[node.Name] = true
		errs = append(errs, c.syncNode(ctx, node, now))
	}
	for name := range c.tracker.seen {
		if !live[name] {
			c.tracker.Forget(name)
		}
	}
	return errors.Join(errs...)
}

func (c *Controller) syncNode(ctx context.Context, node *corev1.Node, now time.Time) error {
	var renew *metav1.MicroTime
	if l, err := c.leases.Leases(NodeLeaseNamespace).Get(node.Name); err == nil {
		renew = leaseRenew(l)
	}
	c.tracker.Observe(node.Name, HeartbeatStamp(node, renew), now)
	if stale, _ := c.tracker.Stale(node.Name, c.cfg.GracePeriod, now); stale {
		if conds, changed := MarkUnknown(node, now); changed {
			cp := node.DeepCopy()
			cp.Status.Conditions = conds
			updated, err := c.client.CoreV1().Nodes().UpdateStatus(ctx, cp, metav1.UpdateOptions{})
			if err != nil {
				return fmt.Errorf("mark node %s unknown: %w", node.Name, err)
			}
			c.recorder.Eventf(node, corev1.EventTypeNormal, "NodeNotReady", "Node %s status is now: NodeNotReady", node.Name)
			node = updated
			if err := c.markPodsNotReady(ctx, node.Name); err != nil {
				return err
			}
		}
	}
	if taints, changed := DesiredTaints(node, now); changed {
		cp := node.DeepCopy()
		cp.Spec.Taints = taints
		updated, err := c.client.CoreV1().Nodes().Update(ctx, cp, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("taint node %s: %w", node.Name, err)
		}
		node = updated
	}
	return c.evict(ctx, node, now)
}

func leaseRenew(l *coordinationv1.Lease) *metav1.MicroTime { return l.Spec.RenewTime }

func (c *Controller) podsOn(node string) []*corev1.Pod {
	objs, _ := c.podIndex.ByIndex(podsByNodeIndex, node)
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*corev1.Pod))
	}
	return out
}

// markPodsNotReady sets Ready=False on the pods of an unreachable node, so
// Services stop sending them traffic before they are evicted.
func (c *Controller) markPodsNotReady(ctx context.Context, node string) error {
	var errs []error
	for _, p := range c.podsOn(node) {
		cond := ctrlutil.PodReadyCondition(p)
		if cond == nil || cond.Status != corev1.ConditionTrue {
			continue
		}
		cp := p.DeepCopy()
		cond = ctrlutil.PodReadyCondition(cp)
		cond.Status, cond.Reason, cond.LastTransitionTime = corev1.ConditionFalse, "NodeNotReady", metav1.NewTime(c.cfg.Now())
		if _, err := c.client.CoreV1().Pods(cp.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// evict marks for deletion the pods whose toleration of the node's
// NoExecute taints has run out.
func (c *Controller) evict(ctx context.Context, node *corev1.Node, now time.Time) error {
	hasNoExecute := false
	for _, t := range node.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			hasNoExecute = true
		}
	}
	if !hasNoExecute {
		return nil
	}
	var errs []error
	for _, p := range c.podsOn(node.Name) {
		if p.DeletionTimestamp != nil {
			continue
		}
		at, ok := EvictAt(p, node.Spec.Taints, c.cfg.DefaultToleration)
		if !ok || now.Before(at) {
			continue
		}
		if err := ctrlutil.DeletePod(ctx, c.client, p); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("evict pod %s/%s: %w", p.Namespace, p.Name, err))
			continue
		}
		c.recorder.Eventf(p, corev1.EventTypeNormal, "TaintManagerEviction", "Marking for deletion Pod %s/%s", p.Namespace, p.Name)
	}
	return errors.Join(errs...)
}
