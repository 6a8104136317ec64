package deployment

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrltest"
	"github.com/hoist-project/hoist/master/controllers/fakeapi"
)

var appLabels = map[string]string{"app": "web"}

func newDeployment(replicas int32, image string, strategy appsv1.DeploymentStrategyType) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "d-uid"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: appLabels},
			Strategy: appsv1.DeploymentStrategy{Type: strategy},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: appLabels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}},
			},
		},
	}
}

// harness runs the deployment controller and stands in for the
// ReplicaSet controller: every ReplicaSet's status follows its spec, with
// pods ready at once, except that pods go away one tick after scale-down.
type harness struct {
	t      *testing.T
	client kubernetes.Interface
	mu     sync.Mutex
	// violation records a Recreate ordering breach seen by the simulator.
	violation string
}

func start(t *testing.T, d *appsv1.Deployment) *harness {
	t.Helper()
	h := &harness{t: t, client: fakeapi.New(d)}
	ctx := ctrltest.Start(t, h.client, func(f informers.SharedInformerFactory) ctrltest.Runner { return New(h.client, f, Config{}) })
	// The simulator stops before the controller (cleanups run last first).
	ctx, stop := context.WithCancel(ctx)
	simDone := make(chan struct{})
	go func() {
		defer close(simDone)
		for ctx.Err() == nil {
			h.simulate(ctx)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		stop()
		<-simDone
	})
	return h
}

func (h *harness) simulate(ctx context.Context) {
	list, err := h.client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for i := range list.Items {
		rs := &list.Items[i]
		want := *rs.Spec.Replicas
		if rs.Status.Replicas == want && rs.Status.AvailableReplicas == want {
			continue
		}
		patch := fmt.Sprintf(`{"status":{"replicas":%d,"readyReplicas":%d,"availableReplicas":%d}}`, want, want, want)
		_, _ = h.client.AppsV1().ReplicaSets("default").Patch(ctx, rs.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
	}
	if list, err = h.client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{}); err != nil {
		return
	}
	d, err := h.client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		return
	}
	for i := range list.Items {
		for j := range list.Items {
			a, b := &list.Items[i], &list.Items[j]
			if i != j && *a.Spec.Replicas > 0 && b.Status.Replicas > 0 && a.Spec.Template.Spec.Containers[0].Image != b.Spec.Template.Spec.Containers[0].Image {
				h.mu.Lock()
				h.violation = fmt.Sprintf("%s scaled up while %s still has %d pods", a.Name, b.Name, b.Status.Replicas)
				h.mu.Unlock()
			}
		}
	}
}

func (h *harness) rsets() []appsv1.ReplicaSet {
	list, err := h.client.AppsV1().ReplicaSets("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return list.Items
}

// state renders image:revision:replicas of every ReplicaSet, sorted by
// revision, e.g. "v1:1:0 v2:2:3".
func (h *harness) state() string {
	sets := h.rsets()
	ptrs := make([]*appsv1.ReplicaSet, len(sets))
	for i := range sets {
		ptrs[i] = &sets[i]
	}
	byRevision(ptrs)
	s := ""
	for i, rs := range ptrs {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s:%s:%d", rs.Spec.Template.Spec.Containers[0].Image, rs.Annotations[RevisionAnnotation], *rs.Spec.Replicas)
	}
	return s
}

func (h *harness) waitState(want string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := h.state()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("replicasets = %q, want %q", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) update(fn func(*appsv1.Deployment)) {
	h.t.Helper()
	ctx := context.Background()
	d, err := h.client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	fn(d)
	if _, err := h.client.AppsV1().Deployments("default").Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) deployment() *appsv1.Deployment {
	d, err := h.client.AppsV1().Deployments("default").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

func (h *harness) waitCondition(reason string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := h.deployment()
		if c := getCondition(&d.Status, appsv1.DeploymentProgressing); c != nil && c.Reason == reason {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("Progressing reason never became %s; status %+v", reason, d.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func setImage(image string) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = image }
}

func TestRollingUpdateRevisionsAndRollback(t *testing.T) {
	h := start(t, newDeployment(3, "v1", appsv1.RollingUpdateDeploymentStrategyType))
	h.waitState("v1:1:3")
	rs := h.rsets()[0]
	hash := rs.Labels[PodTemplateHashLabel]
	if hash == "" || rs.Name != "web-"+hash || rs.Spec.Template.Labels[PodTemplateHashLabel] != hash || rs.Spec.Selector.MatchLabels[PodTemplateHashLabel] != hash {
		t.Fatalf("replicaset %s lacks a consistent pod-template-hash: labels %v", rs.Name, rs.Labels)
	}
	if ref := metav1.GetControllerOf(&rs); ref == nil || ref.Kind != "Deployment" || ref.UID != "d-uid" {
		t.Fatalf("owner = %+v", ref)
	}
	h.waitCondition(ReasonNewRSAvailable)
	d := h.deployment()
	if d.Annotations[RevisionAnnotation] != "1" || d.Status.UpdatedReplicas != 3 || d.Status.AvailableReplicas != 3 {
		t.Fatalf("deployment annotations %v status %+v", d.Annotations, d.Status)
	}

	h.update(func(d *appsv1.Deployment) {
		setImage("v2")(d)
		d.Annotations["kubernetes.io/change-cause"] = "image v2"
	})
	h.waitState("v1:1:0 v2:2:3")
	for _, rs := range h.rsets() {
		if rs.Spec.Template.Spec.Containers[0].Image == "v2" && rs.Annotations["kubernetes.io/change-cause"] != "image v2" {
			t.Fatalf("change-cause not copied to the new replicaset: %v", rs.Annotations)
		}
	}

	// kubectl rollout undo: the deployment gets revision 1's template back.
	h.update(setImage("v1"))
	h.waitState("v2:2:0 v1:3:3")
	for _, rs := range h.rsets() {
		if rs.Spec.Template.Spec.Containers[0].Image == "v1" && rs.Annotations[RevisionHistoryAnnotation] != "1" {
			t.Fatalf("rolled-back replicaset history = %q, want 1", rs.Annotations[RevisionHistoryAnnotation])
		}
	}
	if len(h.rsets()) != 2 {
		t.Fatalf("rollback created a new replicaset instead of reusing revision 1")
	}
	h.waitCondition(ReasonNewRSAvailable)
	if got := h.deployment().Annotations[RevisionAnnotation]; got != "3" {
		t.Fatalf("deployment revision = %s, want 3", got)
	}

	// kubectl rollout pause: template changes do nothing until resume.
	h.update(func(d *appsv1.Deployment) { d.Spec.Paused = true })
	h.waitCondition(ReasonPaused)
	h.update(setImage("v3"))
	time.Sleep(100 * time.Millisecond) // observation window: nothing may happen
	if got := h.state(); got != "v2:2:0 v1:3:3" {
		t.Fatalf("paused deployment rolled out: %s", got)
	}
	h.update(func(d *appsv1.Deployment) { d.Spec.Paused = false })
	h.waitState("v2:2:0 v1:3:0 v3:4:3")
}

func TestRevisionHistoryLimit(t *testing.T) {
	d := newDeployment(1, "v1", appsv1.RollingUpdateDeploymentStrategyType)
	one := int32(1)
	d.Spec.RevisionHistoryLimit = &one
	h := start(t, d)
	h.waitState("v1:1:1")
	h.update(setImage("v2"))
	h.waitState("v1:1:0 v2:2:1")
	h.update(setImage("v3"))
	h.waitState("v2:2:0 v3:3:1")
}

func TestRecreateScalesDownFirst(t *testing.T) {
	h := start(t, newDeployment(2, "v1", appsv1.RecreateDeploymentStrategyType))
	h.waitState("v1:1:2")
	// Start from a rollout the controller itself has seen complete: until its
	// cache holds v1's running replicas there is nothing to wait for.
	h.waitCondition(ReasonNewRSAvailable)
	h.update(setImage("v2"))
	h.waitState("v1:1:0 v2:2:2")
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.violation != "" {
		t.Fatalf("recreate overlap: %s", h.violation)
	}
}

func TestProgressDeadline(t *testing.T) {
	d := newDeployment(2, "v1", appsv1.RollingUpdateDeploymentStrategyType)
	d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: ReasonRSUpdated,
		LastUpdateTime: metav1.NewTime(time.Unix(1000, 0))}}
	d.Status.Replicas, d.Status.UpdatedReplicas = 2, 2 // no pod became available since
	rs := &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Replicas: d.Spec.Replicas}, Status: appsv1.ReplicaSetStatus{Replicas: 2}}
	st, recheck := CalculateStatus(d, rs, []*appsv1.ReplicaSet{rs}, 0, false, time.Unix(1000+300, 0))
	if c := getCondition(&st, appsv1.DeploymentProgressing); c.Reason != ReasonRSUpdated || recheck != 300*time.Second {
		t.Fatalf("before deadline: reason %s recheck %v", c.Reason, recheck)
	}
	st, _ = CalculateStatus(d, rs, []*appsv1.ReplicaSet{rs}, 0, false, time.Unix(1000+601, 0))
	if c := getCondition(&st, appsv1.DeploymentProgressing); c.Reason != ReasonTimedOut || c.Status != corev1.ConditionFalse {
		t.Fatalf("after deadline: %+v", c)
	}
	if c := getCondition(&st, appsv1.DeploymentAvailable); c.Status != corev1.ConditionFalse {
		t.Fatalf("available condition %+v with 0 available pods", c)
	}
}

// TestRecreateWaitsForOldPods: a ReplicaSet's status can claim zero replicas
// while its pods still run; Recreate must wait for the pods themselves.
func TestRecreateWaitsForOldPods(t *testing.T) {
	h := start(t, newDeployment(1, "v1", appsv1.RecreateDeploymentStrategyType))
	h.waitState("v1:1:1")
	h.waitCondition(ReasonNewRSAvailable)
	old := h.rsets()[0]
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "old-pod", Labels: appLabels,
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(&old, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	if _, err := h.client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.update(setImage("v2"))
	h.waitState("v1:1:0 v2:2:0")
	time.Sleep(200 * time.Millisecond) // observation window: v2 must not scale up
	if got := h.state(); got != "v1:1:0 v2:2:0" {
		t.Fatalf("new ReplicaSet scaled up while an old pod still runs: %s", got)
	}
	if err := h.client.CoreV1().Pods("default").Delete(ctx, "old-pod", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitState("v1:1:0 v2:2:1")
}
