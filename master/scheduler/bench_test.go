package scheduler

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hoist-project/hoist/master/scheduler/framework"
)

// BenchmarkScheduleCore measures one scheduling decision (filter + score +
// assume) at 1,000 nodes, without the API round trip; b.N pods are placed
// in turn, each owned by one of 100 ReplicaSets so spreading is exercised.
func BenchmarkScheduleCore(b *testing.B) {
	s := &Scheduler{cache: newNodeCache(), filters: framework.Filters()}
	for i := 0; i < 1000; i++ {
		n := testNode(fmt.Sprintf("node-%04d", i), "64", false)
		n.Status.Allocatable[corev1.ResourcePods] = *n.Status.Allocatable.Pods()
		s.cache.setNode(n)
	}
	t := true
	pods := make([]*corev1.Pod, b.N)
	for i := range pods {
		p := testPod(fmt.Sprintf("p%d", i), "10m")
		p.UID = types.UID(p.Name)
		p.OwnerReferences = []metav1.OwnerReference{{UID: types.UID(fmt.Sprintf("rs%d", i%100)), Controller: &t}}
		pods[i] = p
	}
	b.ResetTimer()
	for _, p := range pods {
		host, _, _ := s.pick(p)
		if host == "" {
			b.Fatal("no host")
		}
		cp := *p
		cp.Spec.NodeName = host
		s.cache.assume(&cp)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pods/s")
}
