package history

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/hoist-project/hoist/master/controllers/fakeapi"
)

var dsKind = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

func owner(image string, limit int32) Owner {
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "agent", UID: "ds-uid",
		Annotations: map[string]string{"kubernetes.io/change-cause": "image " + image}}}
	ds.Spec.Template = corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agent"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}}}
	return Owner{Object: ds, Kind: dsKind, Selector: labels.SelectorFromSet(labels.Set{"app": "agent"}),
		Template: &ds.Spec.Template, Hash: "h-" + image, Limit: &limit}
}

// revisions lists the owner's revisions as "name=revision", oldest first.
func revisions(t *testing.T, client kubernetes.Interface) []string {
	t.Helper()
	l, err := client.AppsV1().ControllerRevisions("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(l.Items, func(a, b appsv1.ControllerRevision) int { return int(a.Revision - b.Revision) })
	var out []string
	for _, r := range l.Items {
		out = append(out, fmt.Sprintf("%s=%d", r.Name, r.Revision))
	}
	return out
}

func TestSyncNumbersRenumbersAndPrunes(t *testing.T) {
	client := fakeapi.New()
	// An empty cache: every call takes the live path, as after a restart.
	lister := appslisters.NewControllerRevisionLister(cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}))
	ctx := context.Background()
	sync := func(o Owner, want int64) {
		t.Helper()
		got, err := Sync(ctx, client, lister, o)
		if err != nil || got != want {
			t.Fatalf("Sync(%s) = %d, %v; want revision %d", o.Hash, got, err, want)
		}
	}
	sync(owner("v1", 2), 1)
	sync(owner("v1", 2), 1) // unchanged template: same revision
	sync(owner("v2", 2), 2)
	sync(owner("v1", 2), 3) // rollback: v1's revision becomes the newest
	if got, want := revisions(t, client), []string{"agent-h-v2=2", "agent-h-v1=3"}; !slices.Equal(got, want) {
		t.Fatalf("revisions %v, want %v", got, want)
	}
	sync(owner("v3", 2), 4)
	sync(owner("v4", 1), 5) // limit 1: only v3 stays besides the current
	if got, want := revisions(t, client), []string{"agent-h-v3=4", "agent-h-v4=5"}; !slices.Equal(got, want) {
		t.Fatalf("after pruning: revisions %v, want %v", got, want)
	}
	o := owner("v5", 0)
	o.Keep = map[string]bool{"agent-h-v3": true} // still run by pods
	sync(o, 6)
	if got, want := revisions(t, client), []string{"agent-h-v3=4", "agent-h-v5=6"}; !slices.Equal(got, want) {
		t.Fatalf("with Keep: revisions %v, want %v", got, want)
	}

	cr, err := client.AppsV1().ControllerRevisions("ns").Get(ctx, "agent-h-v5", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ref := metav1.GetControllerOf(cr); ref == nil || ref.UID != "ds-uid" || ref.Kind != "DaemonSet" ||
		cr.Labels["app"] != "agent" || cr.Labels[appsv1.ControllerRevisionHashLabelKey] != "h-v5" ||
		cr.Annotations["kubernetes.io/change-cause"] != "image v5" {
		t.Errorf("revision metadata %+v", cr.ObjectMeta)
	}
	var data struct {
		Spec struct {
			Template struct {
				Patch string         `json:"$patch"`
				Spec  corev1.PodSpec `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(cr.Data.Raw, &data); err != nil {
		t.Fatal(err)
	}
	if data.Spec.Template.Patch != "replace" || data.Spec.Template.Spec.Containers[0].Image != "v5" {
		t.Errorf("revision data %s: want spec.template with image v5 and $patch: replace", cr.Data.Raw)
	}
}

func TestSyncIgnoresOtherOwnersRevisions(t *testing.T) {
	other := &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "other-x",
		Labels:          map[string]string{"app": "agent"},
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "other", UID: "other-uid"}}, dsKind)}},
		Revision: 7}
	client := fakeapi.New(other)
	lister := appslisters.NewControllerRevisionLister(cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{}))
	got, err := Sync(context.Background(), client, lister, owner("v1", 0))
	if err != nil || got != 1 {
		t.Fatalf("Sync = %d, %v; want revision 1 (another owner's revisions neither number nor get pruned)", got, err)
	}
	if got, want := revisions(t, client), []string{"agent-h-v1=1", "other-x=7"}; !slices.Equal(got, want) {
		t.Fatalf("revisions %v, want %v", got, want)
	}
}
