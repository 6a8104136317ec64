// Package kube is flanneld's Kubernetes subnet manager, upstream flannel's
// --kube-subnet-mgr: a node's subnet is its Node.spec.podCIDR (assigned by
// the master's node IPAM controller), the network config comes from flags or
// a net-conf.json file, and each node publishes its public IP and backend
// data in upstream's node annotations. Other nodes' leases are derived from
// the Node objects a client-go informer watches, so a deleted Node takes its
// routes with it.
package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/hoist-project/hoist/flannel/config"
	"github.com/hoist-project/hoist/flannel/subnet"
)

// Upstream flannel's node annotations (prefix flannel.alpha.coreos.com).
const (
	AnnotationPrefix            = "flannel.alpha.coreos.com/"
	AnnotationPublicIP          = AnnotationPrefix + "public-ip"
	AnnotationPublicIPOverwrite = AnnotationPrefix + "public-ip-overwrite"
	AnnotationBackendType       = AnnotationPrefix + "backend-type"
	AnnotationBackendData       = AnnotationPrefix + "backend-data"
	AnnotationKubeManaged       = AnnotationPrefix + "kube-subnet-manager"
)

// leaseLifetime is the nominal expiry of a kube lease: the Node object has
// no TTL, so RenewLease only re-checks it and re-publishes the annotations.
const leaseLifetime = time.Hour

// Manager is the kube subnet.Manager and subnet.Watcher of one node.
type Manager struct {
	client  kubernetes.Interface
	node    string
	network config.Config
	log     *slog.Logger
	nodes   listersv1.NodeLister
	synced  cache.InformerSynced

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every Node event
}

// New starts a Node informer that lives until ctx ends and returns the
// manager of node nodeName in network.
func New(ctx context.Context, client kubernetes.Interface, nodeName string, network config.Config, log *slog.Logger) (*Manager, error) {
	if nodeName == "" {
		return nil, errors.New("kube subnet manager: the node name is required (--node-name, the name the kubelet registered)")
	}
	if log == nil {
		log = slog.Default()
	}
	inf := nodeInformer(client, log)
	m := &Manager{client: client, node: nodeName, network: network, log: log,
		nodes: listersv1.NewNodeLister(inf.GetIndexer()), synced: inf.HasSynced, changed: make(chan struct{})}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { m.notify() },
		UpdateFunc: func(any, any) { m.notify() },
		DeleteFunc: func(any) { m.notify() },
	}); err != nil {
		return nil, err
	}
	go inf.RunWithContext(ctx)
	return m, nil
}

func (m *Manager) notify() {
	m.mu.Lock()
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
}

// nextChange returns a channel closed at the next Node event.
func (m *Manager) nextChange() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

func (m *Manager) waitSynced(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), m.synced) {
		return ctx.Err()
	}
	return nil
}

// NetworkConfig implements flannel.Store: in kube mode it is given, not stored.
func (m *Manager) NetworkConfig(context.Context) (config.Config, error) { return m.network, nil }

// waiting is a condition that resolves by itself once another component
// acts (the kubelet registers the Node, node IPAM assigns its podCIDR).
type waiting struct{ msg string }

func (w waiting) Error() string { return w.msg }

// AcquireLease implements subnet.Manager: it waits (logging what is missing,
// with back-off) for this node's podCIDR, publishes attrs in the node's
// annotations and returns the podCIDR as the lease. prev is ignored: the
// podCIDR is the master's decision.
func (m *Manager) AcquireLease(ctx context.Context, attrs subnet.Attrs, _ netip.Prefix) (*subnet.Lease, error) {
	if err := m.waitSynced(ctx); err != nil {
		return nil, err
	}
	logEvery, nextLog := time.Second, time.Time{}
	for {
		changed := m.nextChange()
		l, err := m.claim(ctx, attrs)
		var w waiting
		if !errors.As(err, &w) {
			return l, err
		}
		if now := time.Now(); now.After(nextLog) {
			m.log.Warn("waiting for this node's pod subnet", "reason", w.msg)
			nextLog, logEvery = now.Add(logEvery), min(2*logEvery, 30*time.Second)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		case <-time.After(time.Until(nextLog)):
		}
	}
}

// claim is one attempt of AcquireLease.
func (m *Manager) claim(ctx context.Context, attrs subnet.Attrs) (*subnet.Lease, error) {
	n, err := m.nodes.Get(m.node)
	if apierrors.IsNotFound(err) {
		return nil, waiting{fmt.Sprintf("node %s is not registered in the API yet: is its kubelet running with --node-name %s (flanneld's --node-name must be the kubelet's)?", m.node, m.node)}
	}
	if err != nil {
		return nil, err
	}
	podCIDR, err := m.podCIDR(n)
	if err != nil {
		return nil, err
	}
	attrs.NodeName = m.node
	if ip, ok, err := overwriteIP(n); err != nil {
		return nil, err
	} else if ok {
		attrs.PublicIP = ip
	}
	if err := m.checkPublicIP(attrs.PublicIP); err != nil {
		return nil, err
	}
	if err := m.publish(ctx, n, attrs); err != nil {
		return nil, err
	}
	return &subnet.Lease{Subnet: podCIDR, Attrs: attrs, Expiration: time.Now().Add(leaseLifetime)}, nil
}

// podCIDR is n's pod subnet, checked against the flannel network.
func (m *Manager) podCIDR(n *corev1.Node) (netip.Prefix, error) {
	if n.Spec.PodCIDR == "" {
		return netip.Prefix{}, waiting{fmt.Sprintf("node %s has no spec.podCIDR yet: is the master's nodeipam controller running with --cluster-cidr %s?", n.Name, m.network.Network)}
	}
	p, err := netip.ParsePrefix(n.Spec.PodCIDR)
	if err != nil || !p.Addr().Is4() || p.Masked() != p {
		return p, fmt.Errorf("node %s: spec.podCIDR %q is not an IPv4 subnet", n.Name, n.Spec.PodCIDR)
	}
	if !m.network.Network.Contains(p.Addr()) || p.Bits() < m.network.Network.Bits() {
		return p, fmt.Errorf("node %s: spec.podCIDR %s is outside the flannel network %s: flanneld's Network (--cluster-cidr or net-conf.json) must be the master's --cluster-cidr", n.Name, p, m.network.Network)
	}
	return p, nil
}

// overwriteIP reads the public-ip-overwrite annotation an operator may set
// (e.g. a node behind NAT): peers then send to that address.
func overwriteIP(n *corev1.Node) (netip.Addr, bool, error) {
	s, ok := n.Annotations[AnnotationPublicIPOverwrite]
	if !ok || s == "" {
		return netip.Addr{}, false, nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is4() {
		return ip, false, fmt.Errorf("node %s: annotation %s=%q is not an IPv4 address: fix or remove it (kubectl annotate node %s %s-)", n.Name, AnnotationPublicIPOverwrite, s, n.Name, AnnotationPublicIPOverwrite)
	}
	return ip, true, nil
}

// checkPublicIP refuses a public IP another node already publishes: both
// would receive each other's traffic.
func (m *Manager) checkPublicIP(ip netip.Addr) error {
	all, err := m.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	for _, o := range all {
		if o.Name == m.node {
			continue
		}
		if l, ok := leaseOf(o); ok && l.Attrs.PublicIP == ip {
			return fmt.Errorf("nodes %s and %s both claim public IP %s: two nodes cannot share a public IP; set --public-ip/--iface on %s correctly (or the %s annotation), or delete node %s if it is gone", o.Name, m.node, ip, m.node, AnnotationPublicIPOverwrite, o.Name)
		}
	}
	return nil
}

// publish writes attrs into the node's annotations unless they are there.
func (m *Manager) publish(ctx context.Context, n *corev1.Node, attrs subnet.Attrs) error {
	want := annotations(attrs)
	stale := false
	for k, v := range want {
		stale = stale || n.Annotations[k] != v
	}
	if !stale {
		return nil
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": want}})
	if _, err := m.client.CoreV1().Nodes().Patch(ctx, m.node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("publish flannel annotations on node %s: %w", m.node, err)
	}
	m.log.Info("published flannel annotations", "node", m.node, "publicIP", attrs.PublicIP, "backend", attrs.BackendType)
	return nil
}

// annotations renders attrs as upstream's node annotations.
func annotations(attrs subnet.Attrs) map[string]string {
	data := string(attrs.BackendData)
	if data == "" {
		data = "null"
	}
	return map[string]string{
		AnnotationPublicIP:    attrs.PublicIP.String(),
		AnnotationBackendType: attrs.BackendType,
		AnnotationBackendData: data,
		AnnotationKubeManaged: "true",
	}
}

// RenewLease implements subnet.Manager. A Node has no TTL: renewal checks
// the node still holds l's subnet and re-publishes annotations someone
// removed, so the data path of peers heals.
func (m *Manager) RenewLease(ctx context.Context, l *subnet.Lease) error {
	n, err := m.nodes.Get(m.node)
	if apierrors.IsNotFound(err) {
		return subnet.ErrLeaseGone
	}
	if err != nil {
		return err
	}
	if n.Spec.PodCIDR != l.Subnet.String() {
		return subnet.ErrLeaseGone
	}
	if err := m.publish(ctx, n, l.Attrs); err != nil {
		return err
	}
	l.Expiration = time.Now().Add(leaseLifetime)
	return nil
}

// leaseOf derives the lease a node publishes; nodes without flannel's
// annotations or a podCIDR have none yet.
func leaseOf(n *corev1.Node) (subnet.Lease, bool) {
	a := n.Annotations
	if a[AnnotationKubeManaged] != "true" || a[AnnotationBackendType] == "" {
		return subnet.Lease{}, false
	}
	p, err := netip.ParsePrefix(n.Spec.PodCIDR)
	if err != nil || p.Masked() != p {
		return subnet.Lease{}, false
	}
	ip, err := netip.ParseAddr(a[AnnotationPublicIP])
	if err != nil {
		return subnet.Lease{}, false
	}
	if o, err := netip.ParseAddr(a[AnnotationPublicIPOverwrite]); err == nil && o.Is4() {
		ip = o
	}
	attrs := subnet.Attrs{PublicIP: ip, BackendType: a[AnnotationBackendType], NodeName: n.Name}
	if d := a[AnnotationBackendData]; d != "" && d != "null" && json.Valid([]byte(d)) {
		attrs.BackendData = json.RawMessage(d)
	}
	return subnet.Lease{Subnet: p, Attrs: attrs}, true
}
