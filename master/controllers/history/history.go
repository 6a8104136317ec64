// Package history keeps the ControllerRevisions of a DaemonSet or
// StatefulSet: one revision per pod template hash, named
// <owner>-<hash>, holding the strategic-merge patch that restores the
// template (what `kubectl rollout undo` applies), numbered in the order the
// templates became current, and pruned to the owner's revisionHistoryLimit.
package history

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
)

// DefaultLimit is revisionHistoryLimit when unset (upstream's default).
const DefaultLimit = 10

// Owner is the workload whose template history is kept.
type Owner struct {
	Object   metav1.Object
	Kind     schema.GroupVersionKind
	Selector labels.Selector
	Template *corev1.PodTemplateSpec
	Hash     string // the template hash pods carry in controller-revision-hash
	// Limit is spec.revisionHistoryLimit (nil: DefaultLimit): how many
	// revisions besides the current one and those in Keep are kept.
	Limit *int32
	// Keep names revisions not to prune (e.g. still run by pods).
	Keep map[string]bool
}

// Name is the revision name for a template hash.
func Name(owner, hash string) string { return owner + "-" + hash }

// Sync makes Owner's current template the newest revision (creating it,
// or renumbering an older revision with the same template, as after a
// rollback) and prunes old revisions. It returns the current revision's
// number. The cache answers when nothing changed; otherwise a live list
// numbers the revision, so a lagging cache never reuses a number.
func Sync(ctx context.Context, client kubernetes.Interface, cache appslisters.ControllerRevisionLister, o Owner) (int64, error) {
	ns, name := o.Object.GetNamespace(), Name(o.Object.GetName(), o.Hash)
	cached, err := cache.ControllerRevisions(ns).List(o.Selector)
	if err != nil {
		return 0, err
	}
	revs := owned(cached, o.Object)
	if cur := find(revs, name); cur != nil && cur.Revision == maxRevision(revs) && len(excess(o, revs, name)) == 0 {
		return cur.Revision, nil
	}
	api := client.AppsV1().ControllerRevisions(ns)
	list, err := api.List(ctx, metav1.ListOptions{LabelSelector: o.Selector.String()})
	if err != nil {
		return 0, err
	}
	revs = nil
	for i := range list.Items {
		revs = append(revs, &list.Items[i])
	}
	revs = owned(revs, o.Object)
	next := maxRevision(revs) + 1
	cur := find(revs, name)
	switch {
	case cur == nil:
		if cur, err = create(ctx, client, o, name, next); err != nil {
			return 0, err
		}
		revs = append(revs, cur)
	case cur.Revision < next-1:
		upd := cur.DeepCopy()
		upd.Revision = next
		if cur, err = api.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
			return 0, err
		}
	}
	return cur.Revision, prune(ctx, client, o, revs, name)
}

func create(ctx context.Context, client kubernetes.Interface, o Owner, name string, revision int64) (*appsv1.ControllerRevision, error) {
	data, err := TemplatePatch(o.Template)
	if err != nil {
		return nil, err
	}
	lbls := map[string]string{}
	for k, v := range o.Template.Labels {
		lbls[k] = v
	}
	lbls[appsv1.ControllerRevisionHashLabelKey] = o.Hash
	annotations := map[string]string{}
	for k, v := range o.Object.GetAnnotations() {
		annotations[k] = v // kubectl's CHANGE-CAUSE comes from here
	}
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.Object.GetNamespace(), Labels: lbls, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(o.Object, o.Kind)}},
		Data:     runtime.RawExtension{Raw: data},
		Revision: revision,
	}
	got, err := client.AppsV1().ControllerRevisions(cr.Namespace).Create(ctx, cr, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// Another owner's revision (a hash collision) or an old one of a
		// deleted owner with the same name: the caller sees it as an error
		// and retries; our live list did not contain it as ours.
		return nil, fmt.Errorf("controller revision %s/%s exists but is not owned by %s", cr.Namespace, name, o.Object.GetName())
	}
	return got, err
}

// prune deletes the revisions beyond the limit.
func prune(ctx context.Context, client kubernetes.Interface, o Owner, revs []*appsv1.ControllerRevision, current string) error {
	for _, r := range excess(o, revs, current) {
		uid := r.UID
		err := client.AppsV1().ControllerRevisions(r.Namespace).Delete(ctx, r.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// excess are the oldest revisions beyond the limit, never the current one
// or those in Keep.
func excess(o Owner, revs []*appsv1.ControllerRevision, current string) []*appsv1.ControllerRevision {
	var old []*appsv1.ControllerRevision
	for _, r := range revs {
		if r.Name != current && !o.Keep[r.Name] {
			old = append(old, r)
		}
	}
	slices.SortFunc(old, func(a, b *appsv1.ControllerRevision) int { return cmp.Compare(a.Revision, b.Revision) })
	return old[:max(0, len(old)-limit(o))]
}

// OwnerHandler queues the owner (of kind) of a revision that was deleted
// behind the controller's back, so it is recreated.
func OwnerHandler(q ctrlutil.Queue, kind string) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{DeleteFunc: func(obj any) {
		if r, ok := ctrlutil.Unwrap[*appsv1.ControllerRevision](obj); ok {
			if key, ok := ctrlutil.OwnerKey(r, kind); ok {
				q.Add(key)
			}
		}
	}}
}

// TemplatePatch is upstream's revision data: a strategic-merge patch that
// replaces spec.template wholesale.
func TemplatePatch(t *corev1.PodTemplateSpec) ([]byte, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	var tmpl map[string]any
	if err := json.Unmarshal(b, &tmpl); err != nil {
		return nil, err
	}
	tmpl["$patch"] = "replace"
	return json.Marshal(map[string]any{"spec": map[string]any{"template": tmpl}})
}

func limit(o Owner) int {
	if o.Limit == nil {
		return DefaultLimit
	}
	return max(0, int(*o.Limit))
}

func owned(revs []*appsv1.ControllerRevision, owner metav1.Object) []*appsv1.ControllerRevision {
	var out []*appsv1.ControllerRevision
	for _, r := range revs {
		if metav1.IsControlledBy(r, owner) {
			out = append(out, r)
		}
	}
	return out
}

func find(revs []*appsv1.ControllerRevision, name string) *appsv1.ControllerRevision {
	for _, r := range revs {
		if r.Name == name {
			return r
		}
	}
	return nil
}

func maxRevision(revs []*appsv1.ControllerRevision) int64 {
	var m int64
	for _, r := range revs {
		m = max(m, r.Revision)
	}
	return m
}
