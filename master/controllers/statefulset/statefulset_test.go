package statefulset

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	k8stesting "k8s.io/client-go/testing"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrltest"
	"github.com/hoist-project/hoist/master/controllers/fakeapi"
)

func statefulSet(replicas int32, policy appsv1.PodManagementPolicyType) *appsv1.StatefulSet {
	l := map[string]string{"app": "db"}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db", UID: "sts-uid"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas, ServiceName: "db", PodManagementPolicy: policy,
			Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "v1"}}}},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}}},
		},
	}
}

func spod(ord int, rev string, ready bool) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: PodName("db", ord), UID: types.UID(fmt.Sprint(ord)), Labels: map[string]string{RevisionLabel: rev}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
}

func TestOrdinal(t *testing.T) {
	for name, want := range map[string]int{"db-0": 0, "db-12": 12, "db-x": -1, "db-01": -1, "other-1": -1, "db--1": -1} {
		if got := Ordinal("db", name); got != want {
			t.Errorf("Ordinal(%s) = %d, want %d", name, got, want)
		}
	}
}

func plan(set *appsv1.StatefulSet, pods ...*corev1.Pod) (create []int, del []string) {
	m := map[int]*corev1.Pod{}
	for _, p := range pods {
		m[Ordinal("db", p.Name)] = p
	}
	p := Decide(set, m, "r2", true)
	for _, d := range p.Delete {
		del = append(del, d.Name)
	}
	sort.Strings(del)
	return p.Create, del
}

func TestDecideOrdering(t *testing.T) {
	ordered := statefulSet(3, appsv1.OrderedReadyPodManagement)
	parallel := statefulSet(3, appsv1.ParallelPodManagement)
	two := statefulSet(2, appsv1.OrderedReadyPodManagement)
	part := statefulSet(3, appsv1.OrderedReadyPodManagement)
	p := int32(2)
	part.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: &p}
	cases := []struct {
		name   string
		set    *appsv1.StatefulSet
		pods   []*corev1.Pod
		create []int
		del    []string
	}{
		{"first pod only", ordered, nil, []int{0}, nil},
		{"waits for 0 ready", ordered, []*corev1.Pod{spod(0, "r2", false)}, nil, nil},
		{"next after ready", ordered, []*corev1.Pod{spod(0, "r2", true)}, []int{1}, nil},
		{"parallel creates all", parallel, nil, []int{0, 1, 2}, nil},
		{"scale down highest first", two, []*corev1.Pod{spod(0, "r2", true), spod(1, "r2", true), spod(2, "r2", true), spod(3, "r2", true)}, nil, []string{"db-3"}},
		{"scale down waits for ready", two, []*corev1.Pod{spod(0, "r2", true), spod(1, "r2", false), spod(2, "r2", true)}, nil, nil},
		{"update from highest", ordered, []*corev1.Pod{spod(0, "r1", true), spod(1, "r1", true), spod(2, "r1", true)}, nil, []string{"db-2"}},
		{"update continues down", ordered, []*corev1.Pod{spod(0, "r1", true), spod(1, "r1", true), spod(2, "r2", true)}, nil, []string{"db-1"}},
		{"partition stops update", part, []*corev1.Pod{spod(0, "r1", true), spod(1, "r1", true), spod(2, "r2", true)}, nil, nil},
	}
	for _, c := range cases {
		create, del := plan(c.set, c.pods...)
		if !reflect.DeepEqual(create, c.create) || !reflect.DeepEqual(del, c.del) {
			t.Errorf("%s: create %v delete %v, want %v %v", c.name, create, del, c.create, c.del)
		}
	}
}

// kubelet marks every pod of the set Running and Ready.
func kubelet(ctx context.Context, client kubernetes.Interface) {
	l, _ := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	for i := range l.Items {
		if l.Items[i].Status.Phase == "" {
			patch := `{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}`
			_, _ = client.CoreV1().Pods("default").Patch(ctx, l.Items[i].Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
		}
	}
}

func TestControllerOrderedLifecycle(t *testing.T) {
	client := fakeapi.New(statefulSet(3, appsv1.OrderedReadyPodManagement))
	ctx := ctrltest.Start(t, client, func(f informers.SharedInformerFactory) ctrltest.Runner { return New(client, f, Config{}) })
	// Pods are recorded as the controller creates them: polling the list
	// could see two new pods at once and order them by name.
	var mu sync.Mutex
	var created []string
	client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if p, ok := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod); ok {
			mu.Lock()
			created = append(created, p.Name+"="+p.Spec.Containers[0].Image)
			mu.Unlock()
		}
		return false, nil, nil
	})
	// orderOf lists the pods created with image, in creation order.
	orderOf := func(image string) []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, c := range created {
			if name, img, _ := strings.Cut(c, "="); img == image {
				out = append(out, name)
			}
		}
		return out
	}
	state := func() string {
		l, _ := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		var names []string
		for _, p := range l.Items {
			names = append(names, p.Name+"="+p.Spec.Containers[0].Image)
		}
		sort.Strings(names)
		return fmt.Sprint(names)
	}
	wait := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			kubelet(ctx, client)
			if got := state(); got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("pods = %s, want %s", state(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait("[db-0=v1 db-1=v1 db-2=v1]")
	if order := orderOf("v1"); !reflect.DeepEqual(order, []string{"db-0", "db-1", "db-2"}) {
		t.Fatalf("creation order %v", order)
	}
	pvcs, _ := client.CoreV1().PersistentVolumeClaims("default").List(ctx, metav1.ListOptions{})
	if len(pvcs.Items) != 3 || pvcs.Items[0].Name != "data-db-0" {
		t.Fatalf("claims = %v", pvcs.Items)
	}
	p0, _ := client.CoreV1().Pods("default").Get(ctx, "db-0", metav1.GetOptions{})
	if p0.Spec.Hostname != "db-0" || p0.Spec.Subdomain != "db" || p0.Labels[PodIndexLabel] != "0" || p0.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != "data-db-0" {
		t.Fatalf("pod 0 identity: %+v %v", p0.Spec, p0.Labels)
	}
	set, _ := client.AppsV1().StatefulSets("default").Get(ctx, "db", metav1.GetOptions{})
	set.Spec.Template.Spec.Containers[0].Image = "v2"
	if _, err := client.AppsV1().StatefulSets("default").Update(ctx, set, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("[db-0=v2 db-1=v2 db-2=v2]")
	if order := orderOf("v2"); !reflect.DeepEqual(order, []string{"db-2", "db-1", "db-0"}) {
		t.Fatalf("update order %v, want highest ordinal first", order)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		kubelet(ctx, client)
		s, _ := client.AppsV1().StatefulSets("default").Get(ctx, "db", metav1.GetOptions{})
		if s.Status.CurrentRevision == s.Status.UpdateRevision && s.Status.UpdatedReplicas == 3 && s.Status.ReadyReplicas == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never converged: %+v", s.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Revision 1 (v1) and 2 (v2); the pods' label names the current one.
	s, _ := client.AppsV1().StatefulSets("default").Get(ctx, "db", metav1.GetOptions{})
	revs, err := client.AppsV1().ControllerRevisions("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byNumber := map[int64]string{}
	for _, r := range revs.Items {
		byNumber[r.Revision] = r.Name
	}
	if len(revs.Items) != 2 || byNumber[2] != s.Status.UpdateRevision || byNumber[1] == "" {
		t.Errorf("revisions %v, want 1 (v1) and 2 = %s", byNumber, s.Status.UpdateRevision)
	}
	p0, _ = client.CoreV1().Pods("default").Get(ctx, "db-0", metav1.GetOptions{})
	if p0.Labels[RevisionLabel] != s.Status.UpdateRevision {
		t.Errorf("pod db-0 labelled %q, want %q", p0.Labels[RevisionLabel], s.Status.UpdateRevision)
	}
}
