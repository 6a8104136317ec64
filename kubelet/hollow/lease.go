package hollow

import (
	"context"

	coordv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/hoist-project/hoist/kubelet/nodestatus"
)

// leaseRenewer renews a node's Lease with one PUT of the copy it last
// wrote, as upstream's kubelet does, and reads the Lease again only after
// a conflict or when it is missing (nodestatus.RenewLease, which the first
// renewal uses, reads it every time: twice the requests for a thousand
// nodes).
type leaseRenewer struct {
	client kubernetes.Interface
	status *nodestatus.Manager
	last   *coordv1.Lease
}

func (r *leaseRenewer) renew(ctx context.Context, name string) error {
	leases := r.client.CoordinationV1().Leases(nodestatus.LeaseNamespace)
	if r.last == nil {
		if err := r.status.RenewLease(ctx); err != nil {
			return err
		}
		l, err := leases.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		r.last = l
		return nil
	}
	l := r.last.DeepCopy()
	now := metav1.NewMicroTime(metav1.Now().Time)
	l.Spec.RenewTime = &now
	updated, err := leases.Update(ctx, l, metav1.UpdateOptions{})
	if err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			r.last = nil // read (or recreate) it on the next renewal
		}
		return err
	}
	r.last = updated
	return nil
}
