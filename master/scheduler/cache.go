package scheduler

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hoist-project/hoist/master/scheduler/framework"
)

// nodeCache is the scheduler's incrementally updated snapshot: one NodeInfo
// per node with precomputed totals, plus pods assumed bound but not yet
// confirmed by the informer. It is not locked; Scheduler holds its mutex.
type nodeCache struct {
	nodes map[string]*framework.NodeInfo
	// podNode records where each accounted pod sits.
	podNode map[types.UID]string
	assumed map[types.UID]bool
	list    []*framework.NodeInfo
	dirty   bool
}

func newNodeCache() *nodeCache {
	return &nodeCache{
		nodes:   map[string]*framework.NodeInfo{},
		podNode: map[types.UID]string{},
		assumed: map[types.UID]bool{},
	}
}

func (c *nodeCache) info(name string) *framework.NodeInfo {
	ni := c.nodes[name]
	if ni == nil {
		ni = framework.NewNodeInfo(nil)
		c.nodes[name] = ni
	}
	return ni
}

func (c *nodeCache) setNode(node *corev1.Node) {
	ni := c.info(node.Name)
	if ni.Node == nil {
		c.dirty = true
	}
	ni.SetNode(node)
}

func (c *nodeCache) removeNode(name string) {
	ni := c.nodes[name]
	if ni == nil {
		return
	}
	c.dirty = true
	if len(ni.Pods) == 0 {
		delete(c.nodes, name)
		return
	}
	// Pods still point at the node until they are deleted; keep their
	// accounting but stop offering the node.
	ni.Node = nil
}

// addPod accounts a bound pod (or confirms an assumed one).
func (c *nodeCache) addPod(pod *corev1.Pod) {
	if prev, ok := c.podNode[pod.UID]; ok && prev != pod.Spec.NodeName {
		c.removePod(pod.UID)
	}
	delete(c.assumed, pod.UID)
	c.podNode[pod.UID] = pod.Spec.NodeName
	c.info(pod.Spec.NodeName).AddPod(pod)
}

func (c *nodeCache) removePod(uid types.UID) {
	name, ok := c.podNode[uid]
	if !ok {
		return
	}
	delete(c.podNode, uid)
	delete(c.assumed, uid)
	ni := c.nodes[name]
	if ni == nil {
		return
	}
	ni.RemovePod(uid)
	if ni.Node == nil && len(ni.Pods) == 0 {
		delete(c.nodes, name)
	}
}

// assume accounts pod (already carrying the chosen nodeName) before the
// binding is written.
func (c *nodeCache) assume(pod *corev1.Pod) {
	c.addPod(pod)
	c.assumed[pod.UID] = true
}

func (c *nodeCache) isAccounted(uid types.UID) bool {
	_, ok := c.podNode[uid]
	return ok
}

// forget rolls back an assumption whose binding failed.
func (c *nodeCache) forget(uid types.UID) {
	if c.assumed[uid] {
		c.removePod(uid)
	}
}

// schedulable returns the nodes, sorted by name, to run filters over.
func (c *nodeCache) schedulable() []*framework.NodeInfo {
	if c.dirty {
		c.list = c.list[:0]
		for _, ni := range c.nodes {
			if ni.Node != nil {
				c.list = append(c.list, ni)
			}
		}
		sort.Slice(c.list, func(i, j int) bool { return c.list[i].Node.Name < c.list[j].Node.Name })
		c.dirty = false
	}
	return c.list
}
