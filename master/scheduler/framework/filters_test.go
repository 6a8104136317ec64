package framework

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestPodRequests(t *testing.T) {
	p := pod("p", "500m", "1Gi", func(p *corev1.Pod) {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}}})
		p.Spec.InitContainers = []corev1.Container{
			{Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}},
			{Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")}}},
		}
		p.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}
	})
	got := PodRequests(p)
	want := Resource{MilliCPU: 2100, Memory: 1 << 30, Pods: 1}
	if got != want {
		t.Fatalf("PodRequests = %+v, want %+v", got, want)
	}
}

func TestFilters(t *testing.T) {
	cordon := func(n *corev1.Node) { n.Spec.Unschedulable = true }
	taint := func(key string, eff corev1.TaintEffect) func(*corev1.Node) {
		return func(n *corev1.Node) {
			n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Value: "v", Effect: eff})
		}
	}
	tolerate := func(key string, eff corev1.TaintEffect) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: eff})
		}
	}
	notReady := func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionUnknown }
	labels := func(l map[string]string) func(*corev1.Node) {
		return func(n *corev1.Node) {
			for k, v := range l {
				n.Labels[k] = v
			}
		}
	}
	zone := labels(map[string]string{"zone": "a", "gen": "5"})
	cases := []struct {
		name string
		pod  *corev1.Pod
		node *NodeInfo
		want []string
	}{
		{"fits", pod("p", "1", "1Gi"), info(node("n", "2", "2Gi")), nil},
		{"cordoned", pod("p", "", ""), info(node("n", "2", "2Gi", cordon)), []string{ReasonUnschedulable}},
		{"cordoned tolerated", pod("p", "", "", tolerate(corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule)), info(node("n", "2", "2Gi", cordon)), nil},
		{"nodeName other", pod("p", "", "", func(p *corev1.Pod) { p.Spec.NodeName = "x" }), info(node("n", "2", "2Gi")), []string{ReasonNodeName}},
		{"NoSchedule taint", pod("p", "", ""), info(node("n", "2", "2Gi", taint("dedicated", corev1.TaintEffectNoSchedule))), []string{"node(s) had untolerated taint {dedicated: v}"}},
		{"NoExecute taint", pod("p", "", ""), info(node("n", "2", "2Gi", taint("k", corev1.TaintEffectNoExecute))), []string{"node(s) had untolerated taint {k: v}"}},
		{"PreferNoSchedule ignored", pod("p", "", ""), info(node("n", "2", "2Gi", taint("k", corev1.TaintEffectPreferNoSchedule))), nil},
		{"taint tolerated", pod("p", "", "", tolerate("dedicated", "")), info(node("n", "2", "2Gi", taint("dedicated", corev1.TaintEffectNoSchedule))), nil},
		{"not ready", pod("p", "", ""), info(node("n", "2", "2Gi", notReady)), []string{ReasonNotReady}},
		{"not ready tolerated", pod("p", "", "", tolerate(corev1.TaintNodeNotReady, "")), info(node("n", "2", "2Gi", notReady)), nil},
		{"insufficient cpu", pod("p", "1500m", ""), info(node("n", "2", "2Gi"), pod("o", "1", "")), []string{"Insufficient cpu"}},
		{"insufficient cpu+mem", pod("p", "3", "3Gi"), info(node("n", "2", "2Gi")), []string{"Insufficient cpu", "Insufficient memory"}},
		{"exactly full fits", pod("p", "1", "1Gi"), info(node("n", "2", "2Gi"), pod("o", "1", "1Gi")), nil},
		{"too many pods", pod("p", "", ""), info(node("n", "2", "2Gi", func(n *corev1.Node) { n.Status.Allocatable[corev1.ResourcePods] = resource.MustParse("1") }), pod("o", "", "")), []string{ReasonTooManyPods}},
		{"ephemeral", pod("p", "", "", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests[corev1.ResourceEphemeralStorage] = resource.MustParse("20Gi")
		}), info(node("n", "2", "2Gi")), []string{"Insufficient ephemeral-storage"}},
		{"nodeSelector match", pod("p", "", "", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"zone": "a"} }), info(node("n", "2", "2Gi", zone)), nil},
		{"nodeSelector miss", pod("p", "", "", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"zone": "b"} }), info(node("n", "2", "2Gi", zone)), []string{ReasonNodeAffinity}},
		{"affinity In", pod("p", "", "", nodeAffinity(expr("zone", corev1.NodeSelectorOpIn, "a", "b"))), info(node("n", "2", "2Gi", zone)), nil},
		{"affinity NotIn", pod("p", "", "", nodeAffinity(expr("zone", corev1.NodeSelectorOpNotIn, "a"))), info(node("n", "2", "2Gi", zone)), []string{ReasonNodeAffinity}},
		{"affinity Exists", pod("p", "", "", nodeAffinity(expr("zone", corev1.NodeSelectorOpExists))), info(node("n", "2", "2Gi", zone)), nil},
		{"affinity DoesNotExist", pod("p", "", "", nodeAffinity(expr("zone", corev1.NodeSelectorOpDoesNotExist))), info(node("n", "2", "2Gi", zone)), []string{ReasonNodeAffinity}},
		{"affinity Gt", pod("p", "", "", nodeAffinity(expr("gen", corev1.NodeSelectorOpGt, "4"))), info(node("n", "2", "2Gi", zone)), nil},
		{"affinity Lt", pod("p", "", "", nodeAffinity(expr("gen", corev1.NodeSelectorOpLt, "5"))), info(node("n", "2", "2Gi", zone)), []string{ReasonNodeAffinity}},
		{"affinity terms ORed", pod("p", "", "", nodeAffinity(expr("zone", corev1.NodeSelectorOpIn, "b"), expr("gen", corev1.NodeSelectorOpIn, "5"))), info(node("n", "2", "2Gi", zone)), nil},
		{"affinity matchFields", pod("p", "", "", nodeAffinity(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"other"}}}})), info(node("n", "2", "2Gi")), []string{ReasonNodeAffinity}},
		{"hostPort free", pod("p", "", "", withHostPort(80, "")), info(node("n", "2", "2Gi"), pod("o", "", "", withHostPort(81, ""))), nil},
		{"hostPort conflict", pod("p", "", "", withHostPort(80, "")), info(node("n", "2", "2Gi"), pod("o", "", "", withHostPort(80, ""))), []string{ReasonPorts}},
		{"hostPort wildcard vs ip", pod("p", "", "", withHostPort(80, "")), info(node("n", "2", "2Gi"), pod("o", "", "", withHostPort(80, "10.0.0.1"))), []string{ReasonPorts}},
		{"hostPort different ips", pod("p", "", "", withHostPort(80, "10.0.0.2")), info(node("n", "2", "2Gi"), pod("o", "", "", withHostPort(80, "10.0.0.1"))), nil},
		{"anti-affinity own", pod("p", "", "", antiAffinity("kubernetes.io/hostname", map[string]string{"app": "db"})), info(node("n", "2", "2Gi"), pod("o", "", "", withLabels(map[string]string{"app": "db"}))), []string{ReasonAntiAffinity}},
		{"anti-affinity no match", pod("p", "", "", antiAffinity("kubernetes.io/hostname", map[string]string{"app": "db"})), info(node("n", "2", "2Gi"), pod("o", "", "", withLabels(map[string]string{"app": "web"}))), nil},
		{"anti-affinity existing", pod("p", "", "", withLabels(map[string]string{"app": "web"})), info(node("n", "2", "2Gi"), pod("o", "", "", antiAffinity("kubernetes.io/hostname", map[string]string{"app": "web"}))), []string{ReasonExistingAntiAff}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := PreFilter(c.pod, []*NodeInfo{c.node})
			got := RunFilters(Filters(), c.pod, c.node, st)
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("reasons = %q, want %q", got, c.want)
			}
		})
	}
}

func TestAntiAffinityZoneDomain(t *testing.T) {
	z := func(zone string) func(*corev1.Node) { return func(n *corev1.Node) { n.Labels["zone"] = zone } }
	a := info(node("a", "2", "2Gi", z("z1")), pod("o", "", "", withLabels(map[string]string{"app": "db"})))
	b := info(node("b", "2", "2Gi", z("z1")))
	c := info(node("c", "2", "2Gi", z("z2")))
	p := pod("p", "", "", antiAffinity("zone", map[string]string{"app": "db"}))
	st := PreFilter(p, []*NodeInfo{a, b, c})
	for ni, want := range map[*NodeInfo]bool{a: false, b: false, c: true} {
		if fits := len(RunFilters(Filters(), p, ni, st)) == 0; fits != want {
			t.Errorf("node %s fits = %v, want %v", ni.Name(), fits, want)
		}
	}
}

func TestFitErrorMessage(t *testing.T) {
	got := FitErrorMessage(3, map[string]int{"Insufficient cpu": 2, ReasonUnschedulable: 1})
	want := "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := FitErrorMessage(0, nil); got != "no nodes available to schedule pods" {
		t.Fatalf("no nodes: %q", got)
	}
}

func TestNodeInfoRemoveRestoresTotals(t *testing.T) {
	ni := info(node("n", "4", "4Gi"))
	p := pod("p", "1", "1Gi", withHostPort(80, ""), withOwner("rs1"), antiAffinity("kubernetes.io/hostname", map[string]string{"a": "b"}))
	ni.AddPod(p)
	ni.AddPod(p) // re-add replaces, not doubles
	if ni.Requested.MilliCPU != 1000 || ni.OwnerCount["rs1"] != 1 || ni.antiAffinityPods != 1 {
		t.Fatalf("after add: %+v owners=%v aa=%d", ni.Requested, ni.OwnerCount, ni.antiAffinityPods)
	}
	ni.RemovePod(p.UID)
	if (ni.Requested != Resource{}) || len(ni.UsedPorts) != 0 || len(ni.OwnerCount) != 0 || ni.antiAffinityPods != 0 {
		t.Fatalf("after remove: %+v ports=%v owners=%v", ni.Requested, ni.UsedPorts, ni.OwnerCount)
	}
}
