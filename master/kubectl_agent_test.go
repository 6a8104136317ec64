package master

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// fakeNode stands in for a kubelet in the kubectl tests (the kubelet is
// tested elsewhere): it registers a Ready Node, renews its Lease, reports
// the pods bound to it Running and Ready, and acknowledges deletions by
// deleting a pod with grace 0 once its deletionTimestamp is set, so that
// graceful deletion, eviction and drain complete.
type fakeNode struct {
	name   string
	client kubernetes.Interface
	ip     string
	podIPs atomic.Int32
}

// startFakeNode registers node name and runs its agent until the test ends.
func startFakeNode(t *testing.T, m *testMaster, name, ip string) *fakeNode {
	t.Helper()
	client, err := kubernetes.NewForConfig(m.Rest)
	if err != nil {
		t.Fatal(err)
	}
	n := &fakeNode{name: name, client: client, ip: ip}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := n.register(ctx); err != nil {
		t.Fatalf("fake node %s: register: %v", name, err)
	}
	go n.heartbeat(ctx)
	lw := cache.NewListWatchFromClient(client.CoreV1().RESTClient(), "pods", "",
		fields.OneTermEqualSelector("spec.nodeName", name))
	inf := cache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0, cache.Indexers{})
	queue := make(chan *corev1.Pod, 1000)
	enqueue := func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok {
			queue <- p
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, cur any) { enqueue(cur) },
	})
	go inf.Run(ctx.Done())
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case p := <-queue:
				// Errors are conflicts with a newer version, which is queued too.
				_ = n.sync(ctx, p)
			}
		}
	}()
	return n
}

func (n *fakeNode) register(ctx context.Context) error {
	now := metav1.Now()
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("4"),
		corev1.ResourceMemory: resource.MustParse("8Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: map[string]string{"kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux"}},
	}
	created, err := n.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	created.Status = corev1.NodeStatus{
		Capacity: capacity, Allocatable: capacity,
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.ip}, {Type: corev1.NodeHostName, Address: n.name}},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "fake node agent is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now}},
		NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.32.0", OperatingSystem: "linux", Architecture: "amd64", ContainerRuntimeVersion: "fake://1"},
	}
	if _, err := n.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return err
	}
	// A kubelet announces itself with events; describe node shows them.
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", n.name, time.Now().UnixNano()), Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: n.name, UID: created.UID},
		Reason:         "Starting", Message: "Starting fake node agent.", Type: corev1.EventTypeNormal,
		Source:         corev1.EventSource{Component: "kubelet", Host: n.name},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	_, err = n.client.CoreV1().Events("default").Create(ctx, ev, metav1.CreateOptions{})
	return err
}

// heartbeat renews the node Lease so the node lifecycle controller keeps
// the node Ready however long the test runs.
func (n *fakeNode) heartbeat(ctx context.Context) {
	leases := n.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	for {
		now := metav1.NewMicroTime(time.Now())
		l, err := leases.Get(ctx, n.name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, _ = leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: n.name},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: &n.name, LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &now}}, metav1.CreateOptions{})
		case err == nil:
			l.Spec.RenewTime = &now
			_, _ = leases.Update(ctx, l, metav1.UpdateOptions{})
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}

// sync acknowledges a deletion or reports the pod Running and Ready.
func (n *fakeNode) sync(ctx context.Context, p *corev1.Pod) error {
	pods := n.client.CoreV1().Pods(p.Namespace)
	if p.DeletionTimestamp != nil {
		err := pods.Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0),
			Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	}
	if p.Status.Phase == corev1.PodRunning {
		return nil
	}
	now := metav1.Now()
	cp := p.DeepCopy()
	cp.Status.Phase = corev1.PodRunning
	cp.Status.HostIP = n.ip
	cp.Status.PodIP = fmt.Sprintf("10.244.0.%d", 2+n.podIPs.Add(1)%250)
	cp.Status.StartTime = &now
	cp.Status.Conditions = nil
	for _, c := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		cp.Status.Conditions = append(cp.Status.Conditions, corev1.PodCondition{Type: c, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	cp.Status.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		cp.Status.ContainerStatuses = append(cp.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true, Started: ptr.To(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	_, err := pods.UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	return err
}
