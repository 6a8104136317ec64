package hollow

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestPodIPsAssignSkipsNetworkGatewayAndBroadcast(t *testing.T) {
	p := newPodIPs()
	seen := map[string]bool{}
	for i := range 253 { // .2 … .254
		ip, err := p.assign("n", types.UID(fmt.Sprint(i)), "10.244.3.0/24")
		if err != nil {
			t.Fatalf("assign %d: %v", i, err)
		}
		if s := ip.String(); seen[s] || s == "10.244.3.0" || s == "10.244.3.1" || s == "10.244.3.255" {
			t.Fatalf("assign %d: got %s (seen before: %v)", i, s, seen[s])
		} else {
			seen[s] = true
		}
	}
	if _, err := p.assign("n", "full", "10.244.3.0/24"); err == nil {
		t.Fatal("assign on a full /24 succeeded")
	}
	p.release("n", "7") // 10.244.3.9
	ip, err := p.assign("n", "again", "10.244.3.0/24")
	if err != nil || ip.String() != "10.244.3.9" {
		t.Fatalf("after release: got %v, %v; want the released 10.244.3.9", ip, err)
	}
}

func TestPodIPsStablePerPodAndReserved(t *testing.T) {
	p := newPodIPs()
	p.reserve("n", "old", "10.0.0.2")
	a, _ := p.assign("n", "a", "10.0.0.0/24")
	b, _ := p.assign("n", "a", "10.0.0.0/24")
	if a != b || a.String() != "10.0.0.3" {
		t.Fatalf("same pod got %s then %s; want 10.0.0.3 twice (10.0.0.2 is reserved)", a, b)
	}
	if _, err := p.assign("n", "x", "not-a-cidr"); err == nil {
		t.Fatal("bad CIDR accepted")
	}
}

func TestFallbackCIDRsDistinct(t *testing.T) {
	seen := map[string]int{}
	for i := range 16384 {
		c := fallbackCIDR(i)
		if j, ok := seen[c]; ok {
			t.Fatalf("nodes %d and %d share %s", j, i, c)
		}
		seen[c] = i
	}
	if nodeIP(0).String() != "100.127.0.1" || nodeIP(255).String() != "100.127.1.0" {
		t.Fatalf("nodeIP: %s, %s", nodeIP(0), nodeIP(255))
	}
}

func TestRunningStatus(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{UID: "u1"},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init", Image: "busybox"}},
			Containers:     []corev1.Container{{Name: "a", Image: "pause"}, {Name: "b", Image: "testbox"}},
		},
		Status: corev1.PodStatus{QOSClass: corev1.PodQOSBestEffort},
	}
	if isRunning(pod) {
		t.Fatal("a pending pod counts as running")
	}
	now := metav1.Now()
	pod.Status = runningStatus(pod, "100.127.0.1", "10.244.0.2", now)
	if !isRunning(pod) {
		t.Fatalf("runningStatus is not running: %+v", pod.Status)
	}
	st := pod.Status
	if st.PodIP != "10.244.0.2" || st.HostIP != "100.127.0.1" || st.QOSClass != corev1.PodQOSBestEffort || st.StartTime == nil {
		t.Fatalf("status: %+v", st)
	}
	if len(st.ContainerStatuses) != 2 || !st.ContainerStatuses[1].Ready || st.ContainerStatuses[1].State.Running == nil {
		t.Fatalf("container statuses: %+v", st.ContainerStatuses)
	}
	if len(st.InitContainerStatuses) != 1 || st.InitContainerStatuses[0].State.Terminated == nil {
		t.Fatalf("init container statuses: %+v", st.InitContainerStatuses)
	}
	pod.Spec.HostNetwork = true
	if st := runningStatus(pod, "100.127.0.1", "10.244.0.2", now); st.PodIP != "100.127.0.1" {
		t.Fatalf("hostNetwork pod IP = %s, want the host IP", st.PodIP)
	}
}
