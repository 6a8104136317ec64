package endpoints

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrltest"
	"github.com/hoist-project/hoist/master/controllers/fakeapi"
)

func service() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "svc-uid"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
			{Name: "metrics", Port: 9090, TargetPort: intstr.FromInt32(9100)},
		}},
	}
}

type podOpt func(*corev1.Pod)

func terminating(p *corev1.Pod) { now := metav1.Now(); p.DeletionTimestamp = &now }
func notReady(p *corev1.Pod)    { p.Status.Conditions[0].Status = corev1.ConditionFalse }
func noIP(p *corev1.Pod)        { p.Status.PodIP = "" }
func succeeded(p *corev1.Pod)   { p.Status.Phase = corev1.PodSucceeded }
func port(n int32) podOpt {
	return func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = n }
}

func pod(name, ip string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID(name), Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func TestDesiredSubsets(t *testing.T) {
	pods := []*corev1.Pod{
		pod("a", "10.0.0.1"), pod("b", "10.0.0.2", notReady), pod("c", "10.0.0.3", terminating),
		pod("d", "", noIP), pod("e", "10.0.0.5", succeeded), pod("f", "10.0.0.6", port(8081)),
	}
	subsets := DesiredSubsets(service(), pods)
	if len(subsets) != 2 {
		t.Fatalf("subsets = %d, want 2 (two port sets): %+v", len(subsets), subsets)
	}
	s := subsets[0] // "http/8080" sorts before "http/8081"
	if len(s.Addresses) != 1 || s.Addresses[0].IP != "10.0.0.1" || len(s.NotReadyAddresses) != 1 || s.NotReadyAddresses[0].IP != "10.0.0.2" {
		t.Fatalf("subset 0 = %+v", s)
	}
	if s.Ports[0].Port != 8080 || s.Ports[1].Port != 9100 || *s.Addresses[0].NodeName != "n1" || s.Addresses[0].TargetRef.Name != "a" {
		t.Fatalf("subset 0 ports/refs = %+v", s)
	}
	if subsets[1].Addresses[0].IP != "10.0.0.6" || subsets[1].Ports[0].Port != 8081 {
		t.Fatalf("subset 1 = %+v", subsets[1])
	}
	svc := service()
	svc.Spec.PublishNotReadyAddresses = true
	if s := DesiredSubsets(svc, pods[:3]); len(s[0].Addresses) != 3 {
		t.Fatalf("publishNotReadyAddresses: %+v", s)
	}
}

func TestDesiredSliceConditions(t *testing.T) {
	pods := []*corev1.Pod{pod("a", "10.0.0.1"), pod("b", "10.0.0.2", notReady), pod("c", "10.0.0.3", terminating),
		pod("d", "10.0.0.4", terminating, notReady), pod("v6", "fd00::1")}
	slices := DesiredSlices(service(), pods)
	if len(slices) != 2 || slices[0].AddressType != discoveryv1.AddressTypeIPv4 || slices[1].AddressType != discoveryv1.AddressTypeIPv6 {
		t.Fatalf("slices = %+v", slices)
	}
	want := map[string][3]bool{ // ready, serving, terminating
		"a": {true, true, false}, "b": {false, false, false}, "c": {false, true, true}, "d": {false, false, true},
	}
	for _, ep := range slices[0].Endpoints {
		got := [3]bool{*ep.Conditions.Ready, *ep.Conditions.Serving, *ep.Conditions.Terminating}
		if got != want[ep.TargetRef.Name] {
			t.Errorf("pod %s conditions = %v, want %v", ep.TargetRef.Name, got, want[ep.TargetRef.Name])
		}
	}
	var many []*corev1.Pod
	for i := 0; i < 250; i++ {
		many = append(many, pod(fmt.Sprintf("p%03d", i), fmt.Sprintf("10.1.%d.%d", i/200, i%200+1)))
	}
	if s := DesiredSlices(service(), many); len(s) != 3 || len(s[2].Endpoints) != 50 {
		t.Fatalf("250 endpoints split into %d slices", len(s))
	}
}

func TestControllerPublishesAndFollowsPods(t *testing.T) {
	client := fakeapi.New(service(), pod("a", "10.0.0.1"), pod("b", "10.0.0.2", notReady))
	ctx := ctrltest.Start(t, client, func(f informers.SharedInformerFactory) ctrltest.Runner { return New(client, f, Config{}) })
	ready := func() (int, int) {
		ep, err := client.CoreV1().Endpoints("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil || len(ep.Subsets) == 0 {
			return -1, -1
		}
		return len(ep.Subsets[0].Addresses), len(ep.Subsets[0].NotReadyAddresses)
	}
	sliceEndpoints := func() int {
		l, _ := client.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		if len(l.Items) != 1 || l.Items[0].Labels[discoveryv1.LabelManagedBy] != ManagedBy || l.Items[0].OwnerReferences[0].UID != "svc-uid" {
			return -1
		}
		return len(l.Items[0].Endpoints)
	}
	ctrltest.WaitFor(t, "endpoints 1 ready 1 not ready", func() bool { r, n := ready(); return r == 1 && n == 1 })
	ctrltest.WaitFor(t, "slice with 2 endpoints", func() bool { return sliceEndpoints() == 2 })

	b, _ := client.CoreV1().Pods("default").Get(ctx, "b", metav1.GetOptions{})
	b.Status.Conditions[0].Status = corev1.ConditionTrue
	if _, err := client.CoreV1().Pods("default").UpdateStatus(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ctrltest.WaitFor(t, "b becomes ready", func() bool { r, n := ready(); return r == 2 && n == 0 })
	if err := client.CoreV1().Pods("default").Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ctrltest.WaitFor(t, "a removed", func() bool { r, _ := ready(); return r == 1 })
	ctrltest.WaitFor(t, "slice with 1 endpoint", func() bool { return sliceEndpoints() == 1 })

	if err := client.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ctrltest.WaitFor(t, "endpoints and slices removed", func() bool {
		_, err := client.CoreV1().Endpoints("default").Get(ctx, "web", metav1.GetOptions{})
		l, _ := client.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{})
		return err != nil && len(l.Items) == 0
	})
}
