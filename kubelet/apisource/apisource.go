// Package apisource is the kubelet's API-server pod source: pods bound to
// this node (spec.nodeName, a field-selected informer) reach the sync loop as
// the same add/update/remove events, keyed by UID, as static pods. A pod that
// gets a deletionTimestamp is removed with its deletionGracePeriodSeconds as
// grace; once the kubelet has killed it, Finalize deletes it from the API with
// grace 0 and a UID precondition (graceful deletion, as upstream).
package apisource

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/kubelet/config"
)

// SourceName is the value of the config.source annotation for API pods.
const SourceName = "api"

// Source implements config.Source over an informer.
type Source struct {
	Client   kubernetes.Interface
	NodeName string
	Resync   time.Duration // informer resync; 0 = none
	Log      *slog.Logger

	mu     sync.Mutex
	synced cache.InformerSynced
	seen   map[types.UID]*v1.Pod // pods sent as add/update
	gone   map[types.UID]bool    // pods sent as remove
}

var _ config.Source = (*Source)(nil)

// HasSynced: every pod of the initial list has been handed to the kubelet.
func (s *Source) HasSynced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.synced != nil && s.synced()
}

// Run watches this node's pods until ctx ends.
func (s *Source) Run(ctx context.Context, out chan<- config.PodUpdate) error {
	if s.Client == nil || s.NodeName == "" {
		return fmt.Errorf("api pod source: client and node name are required")
	}
	s.mu.Lock()
	s.seen, s.gone = map[types.UID]*v1.Pod{}, map[types.UID]bool{}
	s.mu.Unlock()
	factory := informers.NewSharedInformerFactoryWithOptions(s.Client, s.Resync,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", s.NodeName).String()
		}))
	inf := factory.Core().V1().Pods().Informer()
	// The handlers send on the unbuffered out: a registration counts as synced
	// only once the kubelet received every pod of the initial list.
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.changed(ctx, out, obj) },
		UpdateFunc: func(_, obj any) { s.changed(ctx, out, obj) },
		DeleteFunc: func(obj any) { s.deleted(ctx, out, obj) },
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.synced = reg.HasSynced
	s.mu.Unlock()
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
	return ctx.Err()
}

func (s *Source) send(ctx context.Context, out chan<- config.PodUpdate, op config.Op, pod *v1.Pod) {
	select {
	case out <- config.PodUpdate{Op: op, Pod: pod, Source: SourceName}:
	case <-ctx.Done():
	}
}

func (s *Source) changed(ctx context.Context, out chan<- config.PodUpdate, obj any) {
	pod, ok := obj.(*v1.Pod)
	if !ok || pod.Spec.NodeName != s.NodeName || IsMirror(pod) {
		return // mirror pods stand for static pods, which run from their files
	}
	pod = withSource(pod)
	s.mu.Lock()
	old, known := s.seen[pod.UID]
	gone := s.gone[pod.UID]
	switch {
	case gone:
		s.mu.Unlock()
		return // being killed already
	case pod.DeletionTimestamp != nil:
		s.gone[pod.UID] = true
		delete(s.seen, pod.UID)
		s.mu.Unlock()
		pod = terminating(pod)
		s.log().Info("pod deleted in the API; stopping it", "pod", pod.Namespace+"/"+pod.Name, "grace", grace(pod))
		s.send(ctx, out, config.Remove, pod)
		return
	case known && sameDesired(old, pod):
		s.seen[pod.UID] = pod
		s.mu.Unlock()
		return // only status (e.g. our own write) changed
	}
	s.seen[pod.UID] = pod
	s.mu.Unlock()
	op := config.Add
	if known {
		op = config.Update
	}
	s.send(ctx, out, op, pod)
}

func (s *Source) deleted(ctx context.Context, out chan<- config.PodUpdate, obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pod, ok := obj.(*v1.Pod)
	if !ok || IsMirror(pod) {
		return
	}
	s.mu.Lock()
	wasGone := s.gone[pod.UID]
	delete(s.seen, pod.UID)
	delete(s.gone, pod.UID)
	s.mu.Unlock()
	if !wasGone {
		// Deleted without a graceful phase (grace 0, force): kill now.
		zero := int64(0)
		p := withSource(pod)
		p.Spec.TerminationGracePeriodSeconds = &zero
		s.send(ctx, out, config.Remove, p)
	}
}

// MirrorAnnotation marks a mirror pod: the API's copy of a static pod; its
// value is the static pod's config hash.
const MirrorAnnotation = "kubernetes.io/config.mirror"

// IsMirror reports whether pod is a mirror pod.
func IsMirror(pod *v1.Pod) bool {
	_, ok := pod.Annotations[MirrorAnnotation]
	return ok
}

// sameDesired: nothing the kubelet acts on changed.
func sameDesired(a, b *v1.Pod) bool {
	return apiequality.Semantic.DeepEqual(a.Spec, b.Spec) &&
		apiequality.Semantic.DeepEqual(a.Labels, b.Labels) &&
		apiequality.Semantic.DeepEqual(a.Annotations, b.Annotations)
}

func withSource(pod *v1.Pod) *v1.Pod {
	pod = pod.DeepCopy()
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[config.ConfigSourceAnnotation] = SourceName
	return pod
}

func (s *Source) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

func grace(pod *v1.Pod) time.Duration {
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return time.Duration(*g) * time.Second
	}
	return time.Duration(v1.DefaultTerminationGracePeriodSeconds) * time.Second
}

// terminating returns the pod to kill, with the grace the API asked for.
func terminating(pod *v1.Pod) *v1.Pod {
	if g := pod.DeletionGracePeriodSeconds; g != nil {
		grace := *g
		pod.Spec.TerminationGracePeriodSeconds = &grace
	}
	return pod
}

// Finalize is called once the kubelet has killed a pod. For an API pod that
// is being deleted gracefully it completes the deletion: grace 0 with the
// UID as precondition, so a new pod with the same name is never touched.
func (s *Source) Finalize(ctx context.Context, pod *v1.Pod) error {
	if pod.DeletionTimestamp == nil || pod.Annotations[config.ConfigSourceAnnotation] != SourceName {
		return nil
	}
	zero := int64(0)
	uid := pod.UID
	err := s.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete terminated pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}
