package scale

import (
	"context"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// podTemplate runs one container of image requesting 100m / 64Mi; with
// evictAtOnce the pods tolerate unreachable/not-ready nodes for 0 s.
func podTemplate(app, image string, evictAtOnce bool) corev1.PodTemplateSpec {
	tpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: image,
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}},
		}}},
	}
	if evictAtOnce {
		zero := int64(0)
		for _, key := range []string{corev1.TaintNodeUnreachable, corev1.TaintNodeNotReady} {
			tpl.Spec.Tolerations = append(tpl.Spec.Tolerations, corev1.Toleration{
				Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &zero})
		}
	}
	return tpl
}

// deployment is a RollingUpdate Deployment of replicas pods labelled app=name.
func deployment(name string, replicas int32, image string, maxSurge, maxUnavailable int, evictAtOnce bool) *appsv1.Deployment {
	surge, unavail := intstr.FromInt32(int32(maxSurge)), intstr.FromInt32(int32(maxUnavailable))
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: podTemplate(name, image, evictAtOnce),
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavail}},
		},
	}
}

// createNamespace creates a namespace for one scenario.
func createNamespace(t testing.TB, c kubernetes.Interface, name string) string {
	t.Helper()
	_, err := c.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// livePods lists the pods matching selector that are not terminating.
func livePods(t testing.TB, c kubernetes.Interface, ns, selector string) []corev1.Pod {
	t.Helper()
	list, err := c.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// rolledOut reports whether the Deployment finished rolling out its
// current template, the way `kubectl rollout status` decides.
func rolledOut(c kubernetes.Interface, ns, name string) (bool, string) {
	d, err := c.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return false, err.Error()
	}
	s, want := d.Status, *d.Spec.Replicas
	detail := fmt.Sprintf("generation %d observed %d, replicas %d updated %d available %d (want %d)",
		d.Generation, s.ObservedGeneration, s.Replicas, s.UpdatedReplicas, s.AvailableReplicas, want)
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas == want, detail
}

// running counts pods that run (phase Running with an IP) per node.
func running(pods []corev1.Pod) (total int, perNode map[string]int) {
	perNode = map[string]int{}
	for _, p := range pods {
		if p.Spec.NodeName != "" && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
			total++
			perNode[p.Spec.NodeName]++
		}
	}
	return total, perNode
}
