package ctrlutil

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
)

// PodControl creates and deletes an owner's pods, keeping the owner's
// Expectations in step with the requests (a failed or never-made request
// will never be observed, so it is counted as observed at once) and
// recording the usual SuccessfulCreate/FailedCreate/SuccessfulDelete/
// FailedDelete events on the owner.
type PodControl struct {
	Client   kubernetes.Interface
	Exp      *Expectations
	Recorder record.EventRecorder
}

// CreatePods expects n creations under key and creates the pods newPod(i)
// builds, i = 0..n-1, in SlowStart batches. It returns the first error,
// wrapped. An AlreadyExists error records no event (a name collision the
// next sync resolves).
func (pc PodControl) CreatePods(ctx context.Context, key string, owner runtime.Object, n int, newPod func(i int) *corev1.Pod) error {
	if n <= 0 {
		return nil
	}
	pc.Exp.Expect(key, n, 0)
	var next atomic.Int64
	_, err := SlowStart(ctx, n, func(ctx context.Context) error {
		pod := newPod(int(next.Add(1) - 1))
		created, err := pc.Client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			pc.Exp.Observed(key, 1, 0)
			if !apierrors.IsAlreadyExists(err) {
				pc.Recorder.Eventf(owner, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
			}
			return err
		}
		pc.Recorder.Eventf(owner, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", created.Name)
		return nil
	})
	if err != nil {
		pc.Exp.Observed(key, n-int(next.Load()), 0) // calls never made
		return fmt.Errorf("create pods: %w", err)
	}
	return nil
}

// DeletePods expects len(pods) deletions under key and deletes each pod,
// guarded by its UID. Pods already gone count as deleted; the other
// failures are joined.
func (pc PodControl) DeletePods(ctx context.Context, key string, owner runtime.Object, pods []*corev1.Pod) error {
	if len(pods) == 0 {
		return nil
	}
	pc.Exp.Expect(key, 0, len(pods))
	var errs []error
	for _, pod := range pods {
		err := DeletePod(ctx, pc.Client, pod)
		if err != nil {
			pc.Exp.Observed(key, 0, 1)
			if !apierrors.IsNotFound(err) {
				pc.Recorder.Eventf(owner, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
				errs = append(errs, err)
			}
			continue
		}
		pc.Recorder.Eventf(owner, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", pod.Name)
	}
	return errors.Join(errs...)
}

// DeletePod deletes pod with a UID precondition, so a pod recreated under
// the same name is never deleted by mistake.
func DeletePod(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod) error {
	return client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name,
		metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}})
}
