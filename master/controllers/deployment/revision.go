package deployment

import (
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
)

// Annotations and labels kubectl's rollout commands read.
const (
	RevisionAnnotation        = "deployment.kubernetes.io/revision"
	RevisionHistoryAnnotation = "deployment.kubernetes.io/revision-history"
	DesiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas"
	MaxReplicasAnnotation     = "deployment.kubernetes.io/max-replicas"
	PodTemplateHashLabel      = appsv1.DefaultDeploymentUniqueLabelKey // "pod-template-hash"
	lastAppliedAnnotation     = corev1.LastAppliedConfigAnnotation
)

// TemplateHash is the pod-template-hash of a template (see
// ctrlutil.TemplateHash).
func TemplateHash(tmpl *corev1.PodTemplateSpec, collisionCount *int32) string {
	return ctrlutil.TemplateHash(tmpl, collisionCount)
}

// EqualIgnoreHash compares two templates ignoring the pod-template-hash
// label, which is how an old ReplicaSet is recognised after a rollback.
func EqualIgnoreHash(a, b *corev1.PodTemplateSpec) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	delete(a.Labels, PodTemplateHashLabel)
	delete(b.Labels, PodTemplateHashLabel)
	if len(a.Labels) == 0 {
		a.Labels = nil
	}
	if len(b.Labels) == 0 {
		b.Labels = nil
	}
	return equality.Semantic.DeepEqual(a, b)
}

// Revision of a ReplicaSet (0 if unset or malformed).
func Revision(rs *appsv1.ReplicaSet) int64 {
	v, _ := strconv.ParseInt(rs.Annotations[RevisionAnnotation], 10, 64)
	return v
}

// MaxRevision over sets.
func MaxRevision(sets []*appsv1.ReplicaSet) int64 {
	var m int64
	for _, rs := range sets {
		m = max(m, Revision(rs))
	}
	return m
}

// skipCopy are deployment annotations that must not reach ReplicaSets.
func skipCopy(k string) bool {
	switch k {
	case lastAppliedAnnotation, RevisionAnnotation, RevisionHistoryAnnotation, DesiredReplicasAnnotation, MaxReplicasAnnotation:
		return true
	}
	return false
}

// copyAnnotations copies the deployment's annotations (e.g.
// kubernetes.io/change-cause, shown by `kubectl rollout history`) onto rs;
// it reports whether anything changed.
func copyAnnotations(d *appsv1.Deployment, rs *appsv1.ReplicaSet) bool {
	changed := false
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	for k, v := range d.Annotations {
		if skipCopy(k) || rs.Annotations[k] == v {
			continue
		}
		rs.Annotations[k] = v
		changed = true
	}
	return changed
}

// setRevision gives rs revision rev, remembering its former revision in
// the history annotation (a rolled-back ReplicaSet carries all of them).
func setRevision(rs *appsv1.ReplicaSet, rev int64) bool {
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	old := rs.Annotations[RevisionAnnotation]
	want := strconv.FormatInt(rev, 10)
	if old == want {
		return false
	}
	if old != "" {
		hist := rs.Annotations[RevisionHistoryAnnotation]
		if hist == "" {
			hist = old
		} else {
			hist = strings.Join([]string{hist, old}, ",")
		}
		rs.Annotations[RevisionHistoryAnnotation] = hist
	}
	rs.Annotations[RevisionAnnotation] = want
	return true
}

// byRevision sorts oldest revision first (creation time, then name, break
// ties).
func byRevision(sets []*appsv1.ReplicaSet) {
	sort.SliceStable(sets, func(i, j int) bool {
		ri, rj := Revision(sets[i]), Revision(sets[j])
		if ri != rj {
			return ri < rj
		}
		if !sets[i].CreationTimestamp.Equal(&sets[j].CreationTimestamp) {
			return sets[i].CreationTimestamp.Before(&sets[j].CreationTimestamp)
		}
		return sets[i].Name < sets[j].Name
	})
}
