package ctrlutil

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// EnqueueHandler queues the key of every added, updated or deleted object:
// the handler a controller registers on the informer of the kind it owns.
func EnqueueHandler(q Queue) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { Enqueue(q, o) },
		UpdateFunc: func(_, n any) { Enqueue(q, n) },
		DeleteFunc: func(o any) { Enqueue(q, o) },
	}
}

// Unwrap returns obj as a T, looking inside a delete tombstone; ok is false
// when it is something else.
func Unwrap[T any](obj any) (v T, ok bool) {
	if tomb, isTomb := obj.(cache.DeletedFinalStateUnknown); isTomb {
		obj = tomb.Obj
	}
	v, ok = obj.(T)
	return v, ok
}

// PodEventFunc receives one pod event with the creations and deletions it
// lets a controller observe (see Expectations).
type PodEventFunc func(pod *corev1.Pod, added, deleted int)

// PodHandler turns pod informer events into fn calls: an add observes a
// creation; a delete, or an update that sets deletionTimestamp (graceful
// deletion starting), observes a deletion.
func PodHandler(fn PodEventFunc) cache.ResourceEventHandlerFuncs {
	call := func(obj any, added, deleted int) {
		if pod, ok := Unwrap[*corev1.Pod](obj); ok {
			fn(pod, added, deleted)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { call(o, 1, 0) },
		UpdateFunc: func(o, n any) { call(n, 0, StartedDeleting(o, n)) },
		DeleteFunc: func(o any) { call(o, 0, 1) },
	}
}

// StartedDeleting is 1 when an update from old to cur set the pod's
// deletionTimestamp, else 0.
func StartedDeleting(old, cur any) int {
	o, ok1 := old.(*corev1.Pod)
	n, ok2 := cur.(*corev1.Pod)
	if ok1 && ok2 && o.DeletionTimestamp == nil && n.DeletionTimestamp != nil {
		return 1
	}
	return 0
}

// OwnerKey is the namespace/name key of obj's controller when that
// controller is of kind; ok is false otherwise.
func OwnerKey(obj metav1.Object, kind string) (key string, ok bool) {
	ref := metav1.GetControllerOfNoCopy(obj)
	if ref == nil || ref.Kind != kind {
		return "", false
	}
	return obj.GetNamespace() + "/" + ref.Name, true
}

// ObserveOwner returns the pod event function of a controller owning pods
// of kind: it records the observed creations/deletions against the
// owner's key in exp and queues that key. Pods of other owners and orphans
// are ignored.
func ObserveOwner(q Queue, exp *Expectations, kind string) PodEventFunc {
	return func(pod *corev1.Pod, added, deleted int) {
		if key, ok := OwnerKey(pod, kind); ok {
			exp.Observed(key, added, deleted)
			q.Add(key)
		}
	}
}
