package statussync

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/hoist-project/hoist/kubelet/apisource"
	"github.com/hoist-project/hoist/kubelet/config"
)

// Mirrors keeps one mirror pod in the API per static pod: the same name,
// namespace and spec, annotated with the static pod's config hash and owned
// by the Node (so deleting the Node deletes them).
type Mirrors struct {
	Client   kubernetes.Interface
	NodeName string
	OnCreate func(static *v1.Pod) // a mirror pod was created (e.g. Writer.Resend); may be nil
	Log      *slog.Logger

	mu      sync.Mutex
	nodeUID types.UID
}

// IsStatic reports whether a pod comes from a non-API source.
func IsStatic(pod *v1.Pod) bool {
	src, ok := pod.Annotations[config.ConfigSourceAnnotation]
	return ok && src != apisource.SourceName
}

func (m *Mirrors) node(ctx context.Context) (types.UID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.nodeUID != "" {
		return m.nodeUID, nil
	}
	n, err := m.Client.CoreV1().Nodes().Get(ctx, m.NodeName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("mirror pods wait for node %s to be registered: %w", m.NodeName, err)
	}
	m.nodeUID = n.UID
	return n.UID, nil
}

// Ensure makes the API hold a current mirror pod for a static pod: it
// creates a missing one, replaces a stale one (other hash) and clears one
// stuck in deletion. A non-mirror pod of the same name is left alone.
func (m *Mirrors) Ensure(ctx context.Context, pod *v1.Pod) error {
	if !IsStatic(pod) {
		return nil
	}
	pods := m.Client.CoreV1().Pods(pod.Namespace)
	hash := pod.Annotations[config.ConfigHashAnnotation]
	cur, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return err
	case !apisource.IsMirror(cur):
		return fmt.Errorf("static pod %s/%s: an API pod of the same name exists; no mirror pod is created", pod.Namespace, pod.Name)
	case cur.Annotations[apisource.MirrorAnnotation] == hash && cur.DeletionTimestamp == nil:
		return nil // current
	default:
		if err := m.delete(ctx, cur); err != nil {
			return err
		}
		m.log().Info("stale mirror pod deleted", "pod", pod.Namespace+"/"+pod.Name)
	}
	nodeUID, err := m.node(ctx)
	if err != nil {
		return err
	}
	if _, err := pods.Create(ctx, mirrorOf(pod, m.NodeName, nodeUID), metav1.CreateOptions{}); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil // raced with ourselves; the next sync checks it
		}
		return fmt.Errorf("create mirror pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	m.log().Info("mirror pod created", "pod", pod.Namespace+"/"+pod.Name)
	if m.OnCreate != nil {
		m.OnCreate(pod)
	}
	return nil
}

// Delete removes the mirror pod of a static pod that is gone.
func (m *Mirrors) Delete(ctx context.Context, pod *v1.Pod) error {
	if !IsStatic(pod) {
		return nil
	}
	cur, err := m.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !apisource.IsMirror(cur) || cur.Annotations[apisource.MirrorAnnotation] != pod.Annotations[config.ConfigHashAnnotation] {
		return nil // not ours (a newer version or an API pod)
	}
	return m.delete(ctx, cur)
}

// Sweep deletes this node's mirror pods that stand for no static pod in
// want (namespace/name): static pods removed while the kubelet was down.
func (m *Mirrors) Sweep(ctx context.Context, want map[string]bool) error {
	list, err := m.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", m.NodeName).String(),
	})
	if err != nil {
		return fmt.Errorf("list mirror pods: %w", err)
	}
	for i := range list.Items {
		p := &list.Items[i]
		if p.Spec.NodeName != m.NodeName || !apisource.IsMirror(p) || want[p.Namespace+"/"+p.Name] {
			continue
		}
		if err := m.delete(ctx, p); err != nil {
			return err
		}
		m.log().Info("orphaned mirror pod deleted", "pod", p.Namespace+"/"+p.Name)
	}
	return nil
}

func (m *Mirrors) delete(ctx context.Context, cur *v1.Pod) error {
	zero := int64(0)
	uid := cur.UID
	err := m.Client.CoreV1().Pods(cur.Namespace).Delete(ctx, cur.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid},
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete mirror pod %s/%s: %w", cur.Namespace, cur.Name, err)
	}
	return nil
}

// mirrorOf builds the API object standing for a static pod.
func mirrorOf(pod *v1.Pod, nodeName string, nodeUID types.UID) *v1.Pod {
	mp := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: pod.Name, Namespace: pod.Namespace,
			Labels: pod.Labels, Annotations: map[string]string{},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: nodeName, UID: nodeUID,
			}},
		},
		Spec: *pod.Spec.DeepCopy(),
	}
	for k, v := range pod.Annotations {
		mp.Annotations[k] = v
	}
	mp.Annotations[apisource.MirrorAnnotation] = pod.Annotations[config.ConfigHashAnnotation]
	mp.Spec.NodeName = nodeName
	return mp
}

func (m *Mirrors) log() *slog.Logger {
	if m.Log == nil {
		return slog.Default()
	}
	return m.Log
}
