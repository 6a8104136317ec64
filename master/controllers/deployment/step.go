package deployment

import (
	"context"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
)

// step is one sync's rollout work for one deployment.
type step struct {
	c          *Controller
	d          *appsv1.Deployment
	newRS      *appsv1.ReplicaSet
	old        []*appsv1.ReplicaSet
	progressed bool
}

func replicas(rs *appsv1.ReplicaSet) int32 {
	if rs.Spec.Replicas == nil {
		return 1
	}
	return *rs.Spec.Replicas
}

func (s *step) run(ctx context.Context) error {
	d := s.d
	if d.Spec.Paused {
		// Paused: no new ReplicaSet, no rollout; only plain scaling when a
		// single ReplicaSet is active.
		if s.newRS != nil && s.oldActive() == 0 {
			return s.scale(ctx, &s.newRS, desired(d))
		}
		return nil
	}
	if err := s.ensureNewRS(ctx); err != nil {
		return err
	}
	if err := s.syncRevisionAnnotation(ctx); err != nil {
		return err
	}
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return s.recreate(ctx)
	}
	return s.rolling(ctx)
}

func (s *step) oldActive() int32 {
	var n int32
	for _, rs := range s.old {
		n += replicas(rs) + rs.Status.Replicas
	}
	return n
}

// ensureNewRS creates the ReplicaSet of the current template (starting at
// zero replicas; the strategy scales it), or brings a rolled-back one to
// the next revision.
func (s *step) ensureNewRS(ctx context.Context) error {
	d := s.d
	next := MaxRevision(s.old) + 1
	if s.newRS != nil {
		cp := s.newRS.DeepCopy()
		changed := copyAnnotations(d, cp)
		if Revision(cp) < next {
			changed = setRevision(cp, next) || changed
		}
		if !changed {
			return nil
		}
		patch := ctrlutil.MergePatch(map[string]any{"metadata": map[string]any{"annotations": cp.Annotations}})
		updated, err := s.c.client.AppsV1().ReplicaSets(cp.Namespace).Patch(ctx, cp.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		if err != nil {
			return fmt.Errorf("update replicaset %s: %w", cp.Name, err)
		}
		s.newRS = updated
		return nil
	}
	hash := TemplateHash(&d.Spec.Template, d.Status.CollisionCount)
	tmpl := *d.Spec.Template.DeepCopy()
	tmpl.Labels = withLabel(tmpl.Labels, PodTemplateHashLabel, hash)
	sel := d.Spec.Selector.DeepCopy()
	sel.MatchLabels = withLabel(sel.MatchLabels, PodTemplateHashLabel, hash)
	zero := int32(0)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            d.Name + "-" + hash,
			Namespace:       d.Namespace,
			Labels:          tmpl.Labels,
			OwnerReferences: []metav1.OwnerReference{ctrlRef(d)},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: &zero, MinReadySeconds: d.Spec.MinReadySeconds, Selector: sel, Template: tmpl},
	}
	copyAnnotations(d, rs)
	setRevision(rs, next)
	created, err := s.c.client.AppsV1().ReplicaSets(d.Namespace).Create(ctx, rs, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// Same name, different template: a hash collision. Bump the
		// collision count so the next sync picks another name.
		n := int32(1)
		if d.Status.CollisionCount != nil {
			n = *d.Status.CollisionCount + 1
		}
		patch := ctrlutil.MergePatch(map[string]any{"status": map[string]any{"collisionCount": n}})
		if _, uerr := s.c.client.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); uerr != nil {
			return uerr
		}
		return fmt.Errorf("replicaset %s exists with another template: hash collision, retrying", rs.Name)
	}
	if err != nil {
		return fmt.Errorf("create replicaset %s: %w", rs.Name, err)
	}
	s.c.recorder.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Created new replica set %q", created.Name)
	s.newRS, s.progressed = created, true
	return nil
}

func ctrlRef(d *appsv1.Deployment) metav1.OwnerReference {
	t := true
	return metav1.OwnerReference{APIVersion: deploymentKind.GroupVersion().String(), Kind: deploymentKind.Kind,
		Name: d.Name, UID: d.UID, Controller: &t, BlockOwnerDeletion: &t}
}

func withLabel(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}

// syncRevisionAnnotation mirrors the new ReplicaSet's revision onto the
// deployment, where `kubectl rollout history` and `describe` show it.
func (s *step) syncRevisionAnnotation(ctx context.Context) error {
	want := strconv.FormatInt(Revision(s.newRS), 10)
	if s.d.Annotations[RevisionAnnotation] == want {
		return nil
	}
	patch := ctrlutil.MergePatch(map[string]any{"metadata": map[string]any{"annotations": map[string]string{RevisionAnnotation: want}}})
	updated, err := s.c.client.AppsV1().Deployments(s.d.Namespace).Patch(ctx, s.d.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("update revision annotation: %w", err)
	}
	s.d = updated
	return nil
}

// scale sets the replicas of the ReplicaSet in slot and puts the updated
// object into the slot (the cached object itself is never modified). The
// write is an update of the cached version, so it fails with a conflict
// when the cache is stale: a rollout step computed from an old view (say,
// an old ReplicaSet at 18 replicas that was already scaled to 15) must
// not undo a newer step, or a rollout overshoots maxSurge.
func (s *step) scale(ctx context.Context, slot **appsv1.ReplicaSet, n int32) error {
	from := replicas(*slot)
	if from == n {
		return nil
	}
	rs := (*slot).DeepCopy()
	rs.Spec.Replicas = &n
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	rs.Annotations[DesiredReplicasAnnotation] = strconv.Itoa(int(desired(s.d)))
	updated, err := s.c.client.AppsV1().ReplicaSets(rs.Namespace).Update(ctx, rs, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("scale replicaset %s to %d: %w", rs.Name, n, err)
	}
	dir := "up"
	if n < from {
		dir = "down"
	}
	s.c.recorder.Eventf(s.d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled %s replica set %s from %d to %d", dir, rs.Name, from, n)
	*slot = updated
	s.progressed = true
	return nil
}

// recreate scales every old ReplicaSet to zero, waits until their pods are
// gone, then scales the new one up.
func (s *step) recreate(ctx context.Context) error {
	waiting := false
	for i := range s.old {
		if err := s.scale(ctx, &s.old[i], 0); err != nil {
			return err
		}
		if s.old[i].Status.Replicas > 0 {
			waiting = true
		}
	}
	if waiting || s.oldPodsRunning() {
		return nil
	}
	return s.scale(ctx, &s.newRS, desired(s.d))
}

// oldPodsRunning reports pods of old ReplicaSets that have not finished: a
// ReplicaSet's status can lag behind its pods, as upstream also guards against.
func (s *step) oldPodsRunning() bool {
	old := map[types.UID]bool{}
	for _, rs := range s.old {
		old[rs.UID] = true
	}
	pods, _ := s.c.pods.Pods(s.d.Namespace).List(labels.Everything())
	for _, p := range pods {
		ref := metav1.GetControllerOfNoCopy(p)
		if ref != nil && old[ref.UID] && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			return true
		}
	}
	return false
}

// rolling does one rolling-update step: scale the new ReplicaSet up within
// maxSurge, or else scale old ones down within maxUnavailable.
func (s *step) rolling(ctx context.Context) error {
	want := desired(s.d)
	surge, unavail, err := ResolveFenceposts(s.d.Spec.Strategy.RollingUpdate, want)
	if err != nil {
		s.c.recorder.Eventf(s.d, corev1.EventTypeWarning, "InvalidStrategy", "Rolling update: %v", err)
		return nil
	}
	newR := rsOf(s.newRS)
	old := make([]*RS, len(s.old))
	for i, rs := range s.old {
		old[i] = rsOf(rs)
	}
	if n := NewRSReplicas(want, surge, newR, old); n != newR.Replicas {
		return s.scale(ctx, &s.newRS, n)
	}
	for i, n := range ScaleDownOld(want, unavail, newR, old) {
		if err := s.scale(ctx, &s.old[i], n); err != nil {
			return err
		}
	}
	return nil
}

// rsOf is rs as the rollout arithmetic sees it. Availability is capped at
// spec.replicas: right after a scale-down the ReplicaSet's status still
// counts the pods being deleted until its controller catches up, and
// counting them would let the next sync scale the old ReplicaSets below
// maxUnavailable.
func rsOf(rs *appsv1.ReplicaSet) *RS {
	n := replicas(rs)
	return &RS{Name: rs.Name, Replicas: n, Available: min(rs.Status.AvailableReplicas, n)}
}
