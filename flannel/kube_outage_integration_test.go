package flannel_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hoist-project/hoist/flannel/subnet/kube"
	"github.com/hoist-project/hoist/internal/testenv"
)

// apiUnreachable and apiReachable are the kube manager's outage log lines.
const (
	apiUnreachable = "cannot reach the API server"
	apiReachable   = "API server reachable again"
)

// TestIntegrationFlannelKubeAPIOutage stops the hoist master (the API
// server; its etcd keeps running) under a 2-node kube-mode vxlan fabric for
// many resync periods: the data path stays (routes and FDB entries, a
// long-running connection, new pod-to-pod connections, nothing deleted),
// flanneld stays up and healthy and says once that the API is unreachable.
// After the master restarts on the same data dir the Node watch resumes (a
// node joining afterwards is programmed on both) and annotations removed
// after the outage are published again.
func TestIntegrationFlannelKubeAPIOutage(t *testing.T) {
	testenv.RequireCommand(t, "iptables-restore", "iptables")
	testenv.RequireCommand(t, "bridge", "iproute2")
	f := testenv.Fabric(t, 3)
	all := f.Nodes()
	s := newKubeStore(t, f, "vxlan")
	c := &cluster{f: f, s: s, backend: "vxlan", nodes: all[:2]}
	c.start(t)
	for i, j := range []int{1, 0} {
		testenv.WaitFor(t, 20*time.Second, fmt.Sprintf("pod %d -> pod %d", i, j), func() error {
			return expectSeenAs(c.pods[i].Path, c.pods[j].IP, c.pods[i].IP.String())
		})
	}
	conn := c.longConn(t)
	deletes := func(d *flanneld) (n float64) {
		for _, kind := range []string{"route", "fdb", "neigh", "device"} {
			n += d.Metric(`hoist_flannel_applied_entries_total{kind="` + kind + `",op="delete"}`)
		}
		return n
	}
	var resyncs, deleted [2]float64
	for i, d := range c.daemons {
		resyncs[i], deleted[i] = d.Metric("hoist_flannel_resyncs_total"), deletes(d)
	}

	s.m.stop(t)
	// Long enough for several resyncs and reflector retries (0.8 s doubling).
	for i, d := range c.daemons {
		testenv.WaitFor(t, 30*time.Second, "10 resyncs and the outage logged on "+c.nodes[i].Name, func() error {
			if n := d.Metric("hoist_flannel_resyncs_total") - resyncs[i]; n < 10 {
				return fmt.Errorf("%v resyncs", n)
			}
			if n := logCount(t, d, apiUnreachable); n == 0 {
				return fmt.Errorf("log has no %q", apiUnreachable)
			}
			return nil
		})
	}
	for i, d := range c.daemons {
		peer := (i + 1) % 2
		if err := c.peerProgrammed(t, c.nodes[i], c.envs[peer].Subnet.Masked(), c.nodes[peer].IP, true); err != nil {
			t.Fatalf("%s during the API outage: %v", c.nodes[i].Name, err)
		}
		if n := deletes(d) - deleted[i]; n != 0 {
			t.Fatalf("%s deleted %v kernel entries during the API outage", c.nodes[i].Name, n)
		}
		select {
		case <-d.done:
			t.Fatalf("flanneld on %s exited during the API outage", c.nodes[i].Name)
		default:
		}
		d.WaitHealthy()
		// One actionable line per outage, not one per retry.
		if n := logCount(t, d, apiUnreachable); n != 1 {
			t.Fatalf("%s logged %q %d times during one outage", c.nodes[i].Name, apiUnreachable, n)
		}
		if line := logLine(t, d, apiUnreachable); !strings.Contains(line, s.m.serving.AdvertisedURL) {
			t.Fatalf("outage line names no API server (%s): %s", s.m.serving.AdvertisedURL, line)
		}
	}
	c.expectConn(t, conn, "during the API outage")
	for i, j := range []int{1, 0} {
		if err := expectSeenAs(c.pods[i].Path, c.pods[j].IP, c.pods[i].IP.String()); err != nil {
			t.Fatalf("pod %d -> pod %d during the API outage: %v", i, j, err)
		}
	}

	s.m.start(t)
	for i, d := range c.daemons {
		testenv.WaitFor(t, 60*time.Second, "reconnect logged on "+c.nodes[i].Name, func() error {
			if n := logCount(t, d, apiReachable); n != 1 {
				return fmt.Errorf("%q logged %d times", apiReachable, n)
			}
			return nil
		})
	}
	// n1's annotations vanish (an operator, a restore): peers drop it until
	// n1's renewal (once a minute) publishes them again.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.m.admin.CoreV1().Nodes().Patch(ctx, c.nodes[1].Name, "application/merge-patch+json",
		[]byte(`{"metadata":{"annotations":{"`+kube.AnnotationPublicIP+`":null,"`+kube.AnnotationBackendData+`":null}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// A node joining after the outage reaches both through the resumed watch.
	n2 := all[2]
	mustExec(t, f, n2, "ip", "link", "set", "lo", "up")
	d2 := newFlanneld(t, f, n2, s.flags(t, n2)...)
	d2.Start()
	env2 := d2.Env()
	s.checkLease(t, n2, env2)
	for _, n := range c.nodes {
		testenv.WaitFor(t, 30*time.Second, "a node joined after the outage on "+n.Name, func() error {
			return c.peerProgrammed(t, n, env2.Subnet.Masked(), n2.IP, true)
		})
	}
	p2 := addPod(t, f, n2, d2.subnetFile)
	testenv.WaitFor(t, 20*time.Second, "pod on the new node -> pod 0", func() error {
		return expectSeenAs(p2.Path, c.pods[0].IP, p2.IP.String())
	})
	testenv.WaitFor(t, 90*time.Second, "n1's annotations republished", func() error {
		n, err := s.m.admin.CoreV1().Nodes().Get(context.Background(), c.nodes[1].Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if n.Annotations[kube.AnnotationPublicIP] != c.nodes[1].IP.String() || !strings.Contains(n.Annotations[kube.AnnotationBackendData], "VtepMAC") {
			return fmt.Errorf("annotations %v", n.Annotations)
		}
		return nil
	})
	testenv.WaitFor(t, 10*time.Second, "pod 0 -> pod 1 after republishing", func() error {
		return expectSeenAs(c.pods[0].Path, c.pods[1].IP, c.pods[0].IP.String())
	})
	c.expectConn(t, conn, "after the API outage")
}

// logCount is how many lines of d's log contain s.
func logCount(t *testing.T, d *flanneld, s string) int {
	t.Helper()
	log, err := os.ReadFile(d.logPath)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(log), s)
}

// logLine is the first line of d's log containing s.
func logLine(t *testing.T, d *flanneld, s string) string {
	t.Helper()
	log, _ := os.ReadFile(d.logPath)
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}
