package registry

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
)

func TestEveryResourceIsServable(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Resources() {
		gvr := r.GroupVersionResource().String()
		if seen[gvr] {
			t.Errorf("%s listed twice", gvr)
		}
		seen[gvr] = true
		obj, err := scheme.Scheme.New(r.GroupVersionKind())
		if err != nil {
			t.Fatalf("%s: kind not in scheme: %v", gvr, err)
		}
		if _, err := scheme.Scheme.New(r.GroupVersion.WithKind(r.Kind + "List")); err != nil {
			t.Errorf("%s: no list kind: %v", gvr, err)
		}
		if r.HasStatus && !hasField(obj, "status") {
			t.Errorf("%s: HasStatus but the type has no Status", gvr)
		}
		if r.HasSubresource("scale") && r.Scale == nil {
			t.Errorf("%s: scale subresource without ScaleAccess", gvr)
		}
		// Table rows have one cell per column, also for empty objects.
		tbl := r.TableFor([]runtime.Object{obj}, "", false)
		if len(tbl.Rows[0].Cells) != len(tbl.ColumnDefinitions) {
			t.Errorf("%s: %d cells for %d columns", gvr, len(tbl.Rows[0].Cells), len(tbl.ColumnDefinitions))
		}
	}
	if len(seen) != 21 {
		t.Errorf("serving %d resources, want 21", len(seen))
	}
}

func TestPodValidation(t *testing.T) {
	cases := []struct {
		name string
		spec corev1.PodSpec
		want []string // substrings of the error list; none means valid
	}{
		{"valid", corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}, nil},
		{"no containers", corev1.PodSpec{}, []string{"spec.containers: Required value"}},
		{"no image", corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}, []string{"spec.containers[0].image: Required value"}},
		{"bad name", corev1.PodSpec{Containers: []corev1.Container{{Name: "C_1", Image: "i"}}}, []string{"spec.containers[0].name: Invalid value"}},
		{"duplicate names", corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}, {Name: "c", Image: "i"}}},
			[]string{"spec.containers[1].name: Duplicate value"}},
		{"bad port", corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i", Ports: []corev1.ContainerPort{{ContainerPort: 70000}}}}},
			[]string{"spec.containers[0].ports[0].containerPort: Invalid value"}},
		{"bad restart policy", corev1.PodSpec{RestartPolicy: "Sometimes", Containers: []corev1.Container{{Name: "c", Image: "i"}}},
			[]string{"spec.restartPolicy: Unsupported value"}},
	}
	for _, c := range cases {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: c.spec}
		podStrategy{}.PrepareForCreate(pod)
		if c.spec.RestartPolicy != "" {
			pod.Spec.RestartPolicy = c.spec.RestartPolicy
		}
		errs := podStrategy{}.Validate(pod).ToAggregate()
		if len(c.want) == 0 {
			if errs != nil {
				t.Errorf("%s: unexpected errors %v", c.name, errs)
			}
			continue
		}
		if errs == nil {
			t.Errorf("%s: no errors, want %v", c.name, c.want)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(errs.Error(), w) {
				t.Errorf("%s: %q lacks %q", c.name, errs.Error(), w)
			}
		}
	}
}

func TestPodDefaults(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}, {Name: "d", Image: "x:1"}}}}
	podStrategy{}.PrepareForCreate(pod)
	s := pod.Spec
	if s.RestartPolicy != corev1.RestartPolicyAlways || s.DNSPolicy != corev1.DNSClusterFirst || *s.TerminationGracePeriodSeconds != 30 ||
		s.SchedulerName != "default-scheduler" || s.ServiceAccountName != "default" {
		t.Errorf("pod defaults: %+v", s)
	}
	if s.Containers[0].ImagePullPolicy != corev1.PullAlways || s.Containers[1].ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("pull policies: %s %s", s.Containers[0].ImagePullPolicy, s.Containers[1].ImagePullPolicy)
	}
	if pod.Status.Phase != corev1.PodPending || pod.Status.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("status: %+v", pod.Status)
	}
}

func TestServiceValidation(t *testing.T) {
	cases := []struct {
		name string
		spec corev1.ServiceSpec
		want string
	}{
		{"valid", corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}, ""},
		{"no ports", corev1.ServiceSpec{}, "spec.ports: Required value"},
		{"headless without ports", corev1.ServiceSpec{ClusterIP: "None"}, ""},
		{"unnamed ports", corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}, {Port: 81}}}, "spec.ports[0].name: Required value"},
		{"bad port", corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 0}}}, "spec.ports[0].port: Invalid value"},
		{"external name", corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName}, "spec.externalName: Required value"},
	}
	for _, c := range cases {
		svc := &corev1.Service{Spec: c.spec}
		serviceStrategy{}.PrepareForCreate(svc)
		errs := serviceStrategy{}.Validate(svc).ToAggregate()
		switch {
		case c.want == "" && errs != nil:
			t.Errorf("%s: unexpected %v", c.name, errs)
		case c.want != "" && (errs == nil || !strings.Contains(errs.Error(), c.want)):
			t.Errorf("%s: got %v, want %q", c.name, errs, c.want)
		}
	}
}

// TestControllerRevisionTable checks the CONTROLLER and REVISION cells
// `kubectl get controllerrevisions` shows.
func TestControllerRevisionTable(t *testing.T) {
	var res *Resource
	for _, r := range Resources() {
		if r.Name == "controllerrevisions" {
			res = r
		}
	}
	if res == nil || res.GroupVersion.Group != "apps" || !res.Namespaced {
		t.Fatalf("apps/v1 controllerrevisions not served (got %+v)", res)
	}
	yes := true
	cr := &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: "x-5d8f", OwnerReferences: []metav1.OwnerReference{
		{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "x", Controller: &yes}}}, Revision: 3}
	cells := res.TableFor([]runtime.Object{cr}, "", false).Rows[0].Cells
	if cells[0] != "x-5d8f" || cells[1] != "daemonset.apps/x" || cells[2] != int64(3) {
		t.Errorf("row %v, want [x-5d8f daemonset.apps/x 3 …]", cells)
	}
}
