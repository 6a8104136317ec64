// Package nodeipam assigns every Node a pod subnet (spec.podCIDR and
// spec.podCIDRs) from the cluster CIDR, for flannel's kube subnet manager
// and the kubelet. On start it rebuilds the allocation from the podCIDRs
// existing Nodes already carry, so a master restart never hands out a
// subnet twice; a deleted Node's subnet is released.
package nodeipam

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
)

// Config of the controller.
type Config struct {
	ClusterCIDR  string // default 10.244.0.0/16
	NodeMaskSize int    // default 24
}

// Controller allocates node pod CIDRs.
type Controller struct {
	client   kubernetes.Interface
	nodes    listersv1.NodeLister
	synced   cache.InformerSynced
	queue    ctrlutil.Queue
	set      *CIDRSet
	recorder record.EventRecorder
}

// New returns the controller; a bad cluster CIDR is an error.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config) (*Controller, error) {
	if cfg.ClusterCIDR == "" {
		cfg.ClusterCIDR = "10.244.0.0/16"
	}
	if cfg.NodeMaskSize == 0 {
		cfg.NodeMaskSize = 24
	}
	set, err := NewCIDRSet(cfg.ClusterCIDR, cfg.NodeMaskSize)
	if err != nil {
		return nil, err
	}
	inf := factory.Core().V1().Nodes()
	c := &Controller{client: client, nodes: inf.Lister(), synced: inf.Informer().HasSynced,
		queue: ctrlutil.NewQueue("nodeipam"), set: set}
	inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { ctrlutil.Enqueue(c.queue, o) },
		UpdateFunc: func(_, n any) { ctrlutil.Enqueue(c.queue, n) },
		DeleteFunc: func(o any) { ctrlutil.Enqueue(c.queue, o) },
	})
	return c, nil
}

// Used reports pool usage (assigned, total subnets) for metrics.
func (c *Controller) Used() (int, int) { return c.set.Used() }

// Run rebuilds the allocation from existing Nodes, then assigns subnets
// until ctx ends. One worker: allocations are serialised by design.
func (c *Controller) Run(ctx context.Context) error {
	c.recorder = ctrlutil.NewRecorder(ctx, c.client, "node-ipam-controller")
	if !cache.WaitForCacheSync(ctx.Done(), c.synced) {
		return nil // WaitForCacheSync only gives up when ctx ends: a shutdown, not an error
	}
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	for _, n := range nodes {
		c.occupy(n)
	}
	return ctrlutil.Run(ctx, "nodeipam", c.queue, 1, c.sync)
}

// occupy records a node's existing podCIDR; a conflicting or foreign
// CIDR is reported on the node, never reassigned.
func (c *Controller) occupy(n *corev1.Node) bool {
	if n.Spec.PodCIDR == "" {
		return false
	}
	if err := c.set.Occupy(n.Spec.PodCIDR, n.Name); err != nil {
		c.recorder.Eventf(n, corev1.EventTypeWarning, "CIDRNotAvailable", "Node %s has podCIDR outside the pool or in use: %v", n.Name, err)
	}
	return true
}

func (c *Controller) sync(ctx context.Context, key string) error {
	n, err := c.nodes.Get(key)
	if apierrors.IsNotFound(err) {
		c.set.Release(key)
		return nil
	}
	if err != nil {
		return err
	}
	if c.occupy(n) {
		return nil
	}
	cidr, err := c.set.Allocate(n.Name)
	if err != nil {
		c.recorder.Eventf(n, corev1.EventTypeWarning, "CIDRNotAvailable", "Node %s: %v", n.Name, err)
		return err
	}
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"podCIDR": cidr, "podCIDRs": []string{cidr}}})
	if _, err := c.client.CoreV1().Nodes().Patch(ctx, n.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		c.set.Release(n.Name)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("assign podCIDR %s to node %s: %w", cidr, n.Name, err)
	}
	c.recorder.Eventf(n, corev1.EventTypeNormal, "CIDRAssignmentSucceeded", "Node %s assigned podCIDR %s", n.Name, cidr)
	return nil
}
