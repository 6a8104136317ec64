package kubelet

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/hoist-project/hoist/packaging/images"
)

// probePod: web answers /healthz for 2 s after each start, then 500s, so its
// readiness flips and its liveness probe restarts it; side turns ready
// through an exec probe once it created /tmp/ready.
var probePod = podYAML("probed", `  containers:
  - name: web
    image: `+images.TestboxImage+`
    args: [liveness, --healthy-seconds=2, --port=8080]
    readinessProbe:
      httpGet: {path: /healthz, port: 8080, httpHeaders: [{name: X-Probe, value: hoist}]}
      periodSeconds: 1
      failureThreshold: 1
    livenessProbe:
      httpGet: {path: /healthz, port: 8080}
      initialDelaySeconds: 1
      periodSeconds: 1
      failureThreshold: 1
  - name: side
    image: `+images.TestboxImage+`
    command: [sh, -c, 'sleep 1; touch /tmp/ready; exec sleep 3600']
    readinessProbe:
      exec: {command: [cat, /tmp/ready]}
      periodSeconds: 1
`)

// testProbes is the probes subtest of TestIntegrationKubelet.
func testProbes(t *testing.T, s *suite) {
	n := s.newNode(t, 14)
	n.start()
	n.write("probed.yaml", probePod)
	name := n.podName("probed")
	container := func(st v1.PodStatus, c string) v1.ContainerStatus {
		for _, cs := range st.ContainerStatuses {
			if cs.Name == c {
				return cs
			}
		}
		return v1.ContainerStatus{}
	}
	// NotReady → Ready (both probes passed) → NotReady (web's /healthz 500s),
	// and web restarted by its liveness probe.
	waitFor(t, 60*time.Second, "Ready False→True→False and web restarted", func() (bool, string) {
		hist := n.statuses.readyHistory(name)
		st, _ := n.statuses.get(name)
		web := container(st, "web")
		return hasSubsequence(hist, v1.ConditionFalse, v1.ConditionTrue, v1.ConditionFalse) && web.RestartCount >= 1,
			fmt.Sprintf("ready history %v, web restarts %d", hist, web.RestartCount)
	})
	st, _ := n.statuses.get(name)
	if web := container(st, "web"); web.LastTerminationState.Terminated == nil {
		t.Fatalf("web restarted without a lastState: %+v", web)
	}
	if !strings.Contains(n.logs.String(), "Liveness probe failed: HTTP probe") {
		t.Fatalf("no log line naming the liveness probe and its reason")
	}
	// The exec readiness probe made side ready (and keeps it so).
	waitFor(t, 20*time.Second, "side ready via exec probe", func() (bool, string) {
		st, _ := n.statuses.get(name)
		side := container(st, "side")
		return side.Ready && side.Started != nil && *side.Started, fmt.Sprintf("%+v", side)
	})
	// After a restart web is Ready again: readiness follows the probe, not the
	// first failure.
	waitFor(t, 30*time.Second, "pod Ready again after the restart", func() (bool, string) {
		hist := n.statuses.readyHistory(name)
		return hasSubsequence(hist, v1.ConditionFalse, v1.ConditionTrue, v1.ConditionFalse, v1.ConditionTrue), fmt.Sprintf("%v", hist)
	})
	n.remove("probed.yaml")
	n.waitClean(30 * time.Second)
}

func hasSubsequence(hist []v1.ConditionStatus, want ...v1.ConditionStatus) bool {
	i := 0
	for _, h := range hist {
		if i < len(want) && h == want[i] {
			i++
		}
	}
	return i == len(want)
}

// testReadinessSurvivesRestart is a subtest of TestIntegrationKubelet: a
// kubelet restart must not flip a Ready pod to NotReady (upstream drops the
// pod's endpoints when it does).
func testReadinessSurvivesRestart(t *testing.T, s *suite) {
	n := s.newNode(t, 15)
	n.start()
	n.write("steady.yaml", podYAML("steady", `  containers:
  - name: web
    image: `+images.TestboxImage+`
    args: [netexec, --http-port=8080, --udp-port=0]
    readinessProbe:
      httpGet: {path: /hostname, port: 8080}
      periodSeconds: 1
`))
	name := n.podName("steady")
	waitFor(t, 60*time.Second, "steady Ready", func() (bool, string) {
		hist := n.statuses.readyHistory(name)
		return len(hist) > 0 && hist[len(hist)-1] == v1.ConditionTrue, fmt.Sprintf("%v", hist)
	})
	before := n.statuses.readyHistory(name)
	n.stop()
	calls := n.statuses.count(name)
	n.start()
	// The restarted kubelet reports the pod (its status manager is new, so
	// its first sync is always reported); then probes run for a while.
	waitFor(t, 30*time.Second, "restarted kubelet reported the pod", func() (bool, string) {
		return n.statuses.count(name) > calls, "no status since the restart"
	})
	deadline := time.Now().Add(3 * time.Second) // three probe periods, not a synchronisation
	for time.Now().Before(deadline) {
		if after := n.statuses.readyHistory(name); len(after) != len(before) {
			t.Fatalf("Ready changed across a kubelet restart: %v → %v", before, after)
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.remove("steady.yaml")
	n.waitClean(30 * time.Second)
}

// testExecProbeTimeout is a subtest of TestIntegrationKubelet: an exec
// liveness probe that outlives timeoutSeconds fails, and the container is
// restarted.
func testExecProbeTimeout(t *testing.T, s *suite) {
	n := s.newNode(t, 17)
	n.start()
	n.write("slow.yaml", podYAML("slow", `  containers:
  - name: c
    image: `+images.TestboxImage+`
    args: [sleep]
    livenessProbe:
      exec: {command: [sleep, "30"]}
      timeoutSeconds: 1
      periodSeconds: 1
      failureThreshold: 1
`))
	name := n.podName("slow")
	waitFor(t, 60*time.Second, "container restarted by a timed-out exec probe", func() (bool, string) {
		st, _ := n.statuses.get(name)
		if len(st.ContainerStatuses) == 0 {
			return false, "no status"
		}
		return st.ContainerStatuses[0].RestartCount >= 1, fmt.Sprintf("%+v", st.ContainerStatuses[0])
	})
	if !strings.Contains(n.logs.String(), "Liveness probe failed: timeout after 1s") {
		t.Fatal("no log line saying the exec probe timed out")
	}
	n.remove("slow.yaml")
	n.waitClean(30 * time.Second)
}
