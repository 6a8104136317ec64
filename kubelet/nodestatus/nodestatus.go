// Package nodestatus registers the kubelet's Node in the API and keeps it
// current: addresses, capacity/allocatable, nodeInfo, labels and taints at
// registration; the Ready/MemoryPressure/DiskPressure/PIDPressure conditions
// (with reasons an operator can act on) written when they change or every
// StatusInterval; and the node Lease in kube-node-lease renewed every
// LeaseInterval. Everything is driven by an injected clock.
package nodestatus

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
)

// LeaseNamespace holds the node heartbeats.
const LeaseNamespace = "kube-node-lease"

// Config of the node status manager.
type Config struct {
	Client         kubernetes.Interface
	NodeName       string
	NodeIP         string
	Labels         map[string]string // added to the well-known ones
	Taints         []v1.Taint        // set at registration
	MaxPods        int64             // default 110
	KubeletVersion string
	Machine        Machine
	// RuntimeVersion returns the container runtime's version (containerd's).
	RuntimeVersion func(ctx context.Context) (string, error)
	// NetworkReady returns why pods cannot get a network (nil: ready).
	NetworkReady   func() error
	StatusInterval time.Duration // default 5 min
	// ReadyCheckInterval is how often the runtime and network checks are
	// polled (cheap: a containerd version call and a directory read) so a
	// change of readiness, e.g. the CNI config appearing, is written at
	// once instead of at the next 10 s condition check. Default 1 s.
	ReadyCheckInterval time.Duration
	LeaseInterval      time.Duration // default 10 s
	LeaseDuration      int32         // seconds, default 40
	Clock              clock.Clock
	Log                *slog.Logger
}

// Thresholds of the pressure conditions (upstream's hard eviction defaults).
const (
	memoryPressureBytes = 100 << 20 // memory.available < 100Mi
	diskPressurePercent = 10        // nodefs.available < 10%
	pidPressurePercent  = 90        // more than 90% of pid_max in use
)

func (c *Config) defaults() {
	if c.MaxPods <= 0 {
		c.MaxPods = 110
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = 5 * time.Minute
	}
	if c.LeaseInterval <= 0 {
		c.LeaseInterval = 10 * time.Second
	}
	if c.ReadyCheckInterval <= 0 {
		c.ReadyCheckInterval = time.Second
	}
	if c.LeaseDuration <= 0 {
		c.LeaseDuration = 40
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Manager keeps the Node and its Lease current.
type Manager struct {
	cfg       Config
	info      MachineInfo
	written   []v1.NodeCondition // conditions last written
	lastWrite time.Time
}

// New checks the config and reads the machine once.
func New(cfg Config) (*Manager, error) {
	cfg.defaults()
	if cfg.Client == nil || cfg.NodeName == "" || cfg.Machine == nil {
		return nil, fmt.Errorf("node status: client, node name and machine are required")
	}
	info, err := cfg.Machine.Info()
	if err != nil {
		return nil, fmt.Errorf("node status: read machine info: %w", err)
	}
	return &Manager{cfg: cfg, info: info}, nil
}

// Run registers the node, then keeps its status and lease current until
// ctx ends. API errors are logged and retried on the next tick: a kubelet
// keeps running its pods while the master is away.
func (m *Manager) Run(ctx context.Context) error {
	clk := m.cfg.Clock
	registered := false
	nextStatus, nextLease, nextReadyCheck := clk.Now(), clk.Now(), clk.Now()
	for {
		now := clk.Now()
		if !registered {
			if err := m.Register(ctx); err != nil {
				m.cfg.Log.Warn("node registration failed; retrying", "node", m.cfg.NodeName, "err", err)
			} else {
				registered = true
			}
		}
		if registered && !now.Before(nextLease) {
			if err := m.RenewLease(ctx); err != nil {
				m.cfg.Log.Warn("node lease not renewed", "node", m.cfg.NodeName, "err", err)
			}
			nextLease = now.Add(m.cfg.LeaseInterval)
		}
		if registered && !now.Before(nextReadyCheck) {
			if m.readinessChanged(ctx) {
				nextStatus = now // write it now, not at the next condition check
			}
			nextReadyCheck = now.Add(m.cfg.ReadyCheckInterval)
		}
		if registered && !now.Before(nextStatus) {
			if err := m.SyncStatus(ctx); err != nil {
				m.cfg.Log.Warn("node status not written", "node", m.cfg.NodeName, "err", err)
			}
			nextStatus = now.Add(min(m.cfg.LeaseInterval, m.cfg.StatusInterval)) // conditions are checked this often
		}
		wait := min(nextLease.Sub(now), nextStatus.Sub(now), nextReadyCheck.Sub(now))
		if !registered {
			wait = m.cfg.LeaseInterval
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-clk.After(max(wait, 0)):
		}
	}
}

// readinessChanged reports whether the runtime/network checks disagree
// with the Ready condition last written (nothing written yet: no).
func (m *Manager) readinessChanged(ctx context.Context) bool {
	for _, c := range m.written {
		if c.Type == v1.NodeReady {
			was := ""
			if c.Status != v1.ConditionTrue {
				was = c.Message
			}
			return was != m.notReady(ctx, nil)
		}
	}
	return false
}

// Register creates the Node, or, when it exists (a kubelet restart), adds
// the configured labels to it.
func (m *Manager) Register(ctx context.Context) error {
	nodes := m.cfg.Client.CoreV1().Nodes()
	node := m.node()
	created, err := nodes.Create(ctx, node, metav1.CreateOptions{})
	if err == nil {
		m.cfg.Log.Info("node registered", "node", created.Name)
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("register node %s: %w", m.cfg.NodeName, err)
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := nodes.Get(ctx, m.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		changed := false
		if cur.Labels == nil {
			cur.Labels = map[string]string{}
		}
		for k, v := range node.Labels {
			if cur.Labels[k] != v {
				cur.Labels[k], changed = v, true
			}
		}
		if !changed {
			return nil
		}
		_, err = nodes.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

// node is the object registered for this machine.
func (m *Manager) node() *v1.Node {
	labels := map[string]string{
		v1.LabelHostname:   m.cfg.NodeName,
		v1.LabelOSStable:   m.info.OS,
		v1.LabelArchStable: m.info.Arch,
	}
	for k, v := range m.cfg.Labels {
		labels[k] = v
	}
	n := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: m.cfg.NodeName, Labels: labels},
		Spec:       v1.NodeSpec{Taints: m.cfg.Taints},
	}
	n.Status = m.status(context.Background(), nil, m.cfg.Clock.Now())
	return n
}

// status builds the node's status; old conditions keep their transition
// times when unchanged.
func (m *Manager) status(ctx context.Context, old []v1.NodeCondition, now time.Time) v1.NodeStatus {
	capacity := v1.ResourceList{
		v1.ResourceCPU:              *resource.NewQuantity(int64(m.info.CPUs), resource.DecimalSI),
		v1.ResourceMemory:           *resource.NewQuantity(m.info.MemoryBytes, resource.BinarySI),
		v1.ResourceEphemeralStorage: *resource.NewQuantity(m.info.DiskBytes, resource.BinarySI),
		v1.ResourcePods:             *resource.NewQuantity(m.cfg.MaxPods, resource.DecimalSI),
	}
	st := v1.NodeStatus{
		Capacity: capacity, Allocatable: capacity.DeepCopy(),
		Addresses: []v1.NodeAddress{{Type: v1.NodeHostName, Address: m.cfg.NodeName}},
		NodeInfo: v1.NodeSystemInfo{
			MachineID: m.info.MachineID, BootID: m.info.BootID,
			KernelVersion: m.info.KernelVersion, OSImage: m.info.OSImage,
			OperatingSystem: m.info.OS, Architecture: m.info.Arch,
			KubeletVersion: m.cfg.KubeletVersion,
		},
		Conditions: m.conditions(ctx, old, now),
	}
	if m.cfg.NodeIP != "" {
		st.Addresses = append([]v1.NodeAddress{{Type: v1.NodeInternalIP, Address: m.cfg.NodeIP}}, st.Addresses...)
	}
	if m.cfg.RuntimeVersion != nil {
		if v, err := m.cfg.RuntimeVersion(ctx); err == nil {
			st.NodeInfo.ContainerRuntimeVersion = "containerd://" + v
		}
	}
	return st
}

// SyncStatus writes the node status when a condition changed or the
// status interval passed since the last write.
func (m *Manager) SyncStatus(ctx context.Context) error {
	now := m.cfg.Clock.Now()
	if m.written != nil && now.Sub(m.lastWrite) < m.cfg.StatusInterval &&
		sameConditions(m.written, m.conditions(ctx, m.written, now)) {
		return nil // unchanged: no API call at all
	}
	nodes := m.cfg.Client.CoreV1().Nodes()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := nodes.Get(ctx, m.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		st := m.status(ctx, cur.Status.Conditions, now)
		st.DaemonEndpoints, st.Images, st.VolumesInUse, st.VolumesAttached = cur.Status.DaemonEndpoints, cur.Status.Images, cur.Status.VolumesInUse, cur.Status.VolumesAttached
		cur.Status = st
		if _, err := nodes.UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
			return err
		}
		m.written, m.lastWrite = st.Conditions, now
		return nil
	})
}

func sameConditions(a, b []v1.NodeCondition) bool {
	strip := func(cs []v1.NodeCondition) []v1.NodeCondition {
		out := make([]v1.NodeCondition, len(cs))
		for i, c := range cs {
			c.LastHeartbeatTime, c.LastTransitionTime = metav1.Time{}, metav1.Time{}
			out[i] = c
		}
		return out
	}
	return apiequality.Semantic.DeepEqual(strip(a), strip(b))
}

// RenewLease creates or renews the node's Lease (holder = node name).
func (m *Manager) RenewLease(ctx context.Context) error {
	leases := m.cfg.Client.CoordinationV1().Leases(LeaseNamespace)
	now := metav1.NewMicroTime(m.cfg.Clock.Now())
	holder, dur := m.cfg.NodeName, m.cfg.LeaseDuration
	lease, err := leases.Get(ctx, m.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		lease = &coordv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: m.cfg.NodeName, Namespace: LeaseNamespace},
			Spec:       coordv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &dur, RenewTime: &now},
		}
		if nodeUID := m.nodeUID(ctx); nodeUID != "" {
			lease.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: m.cfg.NodeName, UID: types.UID(nodeUID)}}
		}
		_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds, lease.Spec.RenewTime = &holder, &dur, &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

func (m *Manager) nodeUID(ctx context.Context) string {
	n, err := m.cfg.Client.CoreV1().Nodes().Get(ctx, m.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return string(n.UID)
}
