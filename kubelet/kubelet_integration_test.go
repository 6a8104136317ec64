package kubelet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd"
	v1 "k8s.io/api/core/v1"

	"github.com/hoist-project/hoist/kubelet/network"
	"github.com/hoist-project/hoist/kubelet/runtime"

	"github.com/hoist-project/hoist/packaging/images"
)

func podYAML(name, body string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\nspec:\n  terminationGracePeriodSeconds: 2\n%s", name, body)
}

var webPod = podYAML("web", `  containers:
  - name: web
    image: `+images.TestboxImage+`
    args: [netexec, --http-port=8080, --udp-port=0]
    env: [{name: EDIT, value: "1"}]
`)

// TestIntegrationKubelet runs the node-local kubelet against a private
// containerd, hoist's CNI plugins and real netns. Subtests share the daemon
// and the image archives; each has its own kubelet, netns and subnet.
func TestIntegrationKubelet(t *testing.T) {
	s := newSuite(t)

	t.Run("EtcFiles", func(t *testing.T) { testEtcFiles(t, s) })
	t.Run("StaticPodLifecycle", func(t *testing.T) {
		n := s.newNode(t, 11)
		n.start()
		n.waitImported()
		written := time.Now()
		n.write("web.yaml", webPod)
		st := n.waitRunning("web")
		t.Logf("static pod file written → Running (status seen): %v", time.Since(written))
		if !strings.HasPrefix(st.PodIP, n.subnet+".") {
			t.Fatalf("pod IP %s not from the CNI range %s.0/24", st.PodIP, n.subnet)
		}
		waitFor(t, 20*time.Second, "HTTP /hostname", func() (bool, string) {
			body, err := n.httpGet("http://" + st.PodIP + ":8080/hostname")
			return err == nil && body == n.podName("web"), fmt.Sprintf("body %q err %v", body, err)
		})
		before := n.inventory()
		if len(before.containers) != 2 || len(before.netns) != 1 || len(before.leases) != 1 {
			t.Fatalf("want 2 containers, 1 netns, 1 lease; got %+v", before)
		}
		oldUID := n.statuses.pod(n.podName("web")).UID

		// Edit: a new UID, the old pod torn down, the new one serving.
		n.write("web.yaml", strings.Replace(webPod, `value: "1"`, `value: "2"`, 1))
		waitFor(t, 30*time.Second, "edited pod recreated", func() (bool, string) {
			p := n.statuses.pod(n.podName("web"))
			inv := n.inventory()
			return p != nil && p.UID != oldUID && len(inv.containers) == 2 && len(inv.netns) == 1 && len(inv.leases) == 1,
				fmt.Sprintf("%+v", inv)
		})
		st = n.waitRunning("web")
		for _, id := range before.containers {
			for _, now := range n.inventory().containers {
				if id == now {
					t.Fatalf("container %s of the old pod survived the edit", id)
				}
			}
		}
		waitFor(t, 20*time.Second, "edited pod serving", func() (bool, string) {
			body, err := n.httpGet("http://" + st.PodIP + ":8080/hostname")
			return err == nil && body == n.podName("web"), fmt.Sprintf("body %q err %v", body, err)
		})

		// Remove: containers, netns, lease and checkpoint all gone.
		n.remove("web.yaml")
		n.waitClean(30 * time.Second)
	})

	t.Run("TwoContainersShareLocalhost", func(t *testing.T) {
		n := s.newNode(t, 12)
		n.start()
		n.write("duo.yaml", podYAML("duo", `  containers:
  - name: server
    image: `+images.TestboxImage+`
    args: [netexec, --http-port=8080, --udp-port=0]
    resources:
      requests: {cpu: 100m, memory: 32Mi}
      limits: {cpu: 200m, memory: 64Mi}
  - name: client
    image: `+images.TestboxImage+`
    command: [sh, -c, 'until wget -qO- http://127.0.0.1:8080/hostname; do sleep 0.2; done; echo; echo reached; echo to-stderr >&2; exec sleep 3600']
`))
		n.waitRunning("duo")
		uid := string(n.statuses.pod(n.podName("duo")).UID)
		var log string
		waitFor(t, 20*time.Second, "client reached server over localhost", func() (bool, string) {
			log = n.readLog("duo", uid, "client", 0)
			return strings.Contains(log, "reached") && strings.Contains(log, "to-stderr"), log
		})
		if !strings.Contains(log, n.podName("duo")) {
			t.Fatalf("client log lacks the server's answer (the pod hostname): %q", log)
		}
		cri := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (stdout|stderr) [FP] `)
		for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
			if !cri.MatchString(line) {
				t.Fatalf("log line not in CRI format: %q", line)
			}
		}
		if !strings.Contains(log, " stderr F to-stderr") {
			t.Fatalf("stderr not tagged: %q", log)
		}
		// Burstable pod: its cgroup sits under <parent>/burstable/pod<uid>.
		cg := filepath.Join(n.cfg.CgroupParent, "burstable", "pod"+uid, "server-0")
		for file, want := range map[string]string{
			"memory/" + cg + "/memory.limit_in_bytes": "67108864",
			"cpu/" + cg + "/cpu.shares":               "102",
			"cpu/" + cg + "/cpu.cfs_quota_us":         "20000",
		} {
			b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", file))
			if err != nil || strings.TrimSpace(string(b)) != want {
				t.Errorf("%s = %q (%v), want %s", file, strings.TrimSpace(string(b)), err, want)
			}
		}
	})

	t.Run("InitContainersRunInOrder", func(t *testing.T) {
		n := s.newNode(t, 13)
		n.start()
		n.write("init.yaml", podYAML("init", `  volumes: [{name: work, emptyDir: {}}]
  initContainers:
  - name: first
    image: `+images.TestboxImage+`
    command: [sh, -c, 'sleep 0.3; echo one >> /work/order']
    volumeMounts: [{name: work, mountPath: /work}]
  - name: second
    image: `+images.TestboxImage+`
    command: [sh, -c, 'echo two >> /work/order']
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: app
    image: `+images.TestboxImage+`
    command: [sh, -c, 'cat /work/order; echo host=$(hostname); echo "name=$POD_NAME ip=$POD_IP uid=$POD_UID"; exec sleep 3600']
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: POD_UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
    volumeMounts: [{name: work, mountPath: /work}]
`))
		st := n.waitRunning("init")
		for _, ic := range st.InitContainerStatuses {
			if ic.State.Terminated == nil || ic.State.Terminated.ExitCode != 0 {
				t.Fatalf("init container %s not completed: %+v", ic.Name, ic.State)
			}
		}
		uid := string(n.statuses.pod(n.podName("init")).UID)
		want := fmt.Sprintf("name=%s ip=%s uid=%s", n.podName("init"), st.PodIP, uid)
		waitFor(t, 10*time.Second, "app output", func() (bool, string) {
			log := n.readLog("init", uid, "app", 0)
			return strings.Contains(log, "stdout F one\n") && strings.Contains(log, "stdout F two\n") &&
				strings.Index(log, "F one") < strings.Index(log, "F two") && strings.Contains(log, want), log
		})
	})

	t.Run("MalformedManifestBesideGood", func(t *testing.T) {
		n := s.newNode(t, 14)
		n.start()
		n.write("bad.yaml", strings.Replace(webPod, "image:", "imagee:", 1))
		n.write("good.yaml", strings.Replace(webPod, "name: web\n", "name: good\n", 1))
		n.waitRunning("good")
		waitFor(t, 5*time.Second, "error naming file and field", func() (bool, string) {
			l := n.logs.String()
			return strings.Contains(l, "bad.yaml") && strings.Contains(l, "imagee"), l
		})
		if len(n.inventory().containers) != 2 {
			t.Fatalf("want exactly the good pod's 2 containers, got %+v", n.inventory())
		}
	})

	t.Run("Probes", func(t *testing.T) { testProbes(t, s) })
	t.Run("ReadinessSurvivesRestart", func(t *testing.T) { testReadinessSurvivesRestart(t, s) })
	t.Run("APISide", func(t *testing.T) { testAPISide(t, s) })
	t.Run("ExecProbeTimeout", func(t *testing.T) { testExecProbeTimeout(t, s) })

	t.Run("CrashLoopBackOff", func(t *testing.T) {
		n := s.newNode(t, 15)
		n.start()
		n.write("crash.yaml", podYAML("crash", `  containers:
  - name: crash
    image: `+images.TestboxImage+`
    command: [sh, -c, 'echo crashing; exit 3']
`))
		waitFor(t, 30*time.Second, "restarts with back-off", func() (bool, string) {
			st, ok := n.statuses.get(n.podName("crash"))
			if !ok || len(st.ContainerStatuses) == 0 {
				return false, "no status"
			}
			cs := st.ContainerStatuses[0]
			return cs.RestartCount >= 3 && cs.LastTerminationState.Terminated != nil &&
				cs.LastTerminationState.Terminated.ExitCode == 3, fmt.Sprintf("%+v", cs)
		})
		waitFor(t, 10*time.Second, "CrashLoopBackOff shown", func() (bool, string) {
			st, _ := n.statuses.get(n.podName("crash"))
			w := st.ContainerStatuses[0].State.Waiting
			return w != nil && w.Reason == "CrashLoopBackOff" && strings.Contains(w.Message, "back-off"), fmt.Sprintf("%+v", st.ContainerStatuses[0].State)
		})
		if inv := n.inventory(); len(inv.containers) != 2 {
			t.Fatalf("old runs must be removed (want pause + latest), got %+v", inv)
		}
	})

	t.Run("RestartAdoptsPods", func(t *testing.T) {
		n := s.newNode(t, 16)
		n.start()
		n.write("web.yaml", webPod)
		n.write("gone.yaml", strings.Replace(webPod, "name: web\n", "name: gone\n", 1))
		n.waitRunning("web")
		n.waitRunning("gone")
		pids := n.taskPIDs()
		if len(pids) != 4 {
			t.Fatalf("want 4 running tasks, got %v", pids)
		}
		owner := map[string]string{}
		for id := range pids {
			owner[id] = n.podOf(id)
		}
		n.stop()
		// While the kubelet is down, one pod's manifest goes away.
		n.remove("gone.yaml")
		goneUID := n.statuses.pod(n.podName("gone")).UID
		n.statuses = newStatusRecorder()
		n.cfg.StatusSink = n.statuses
		n.start()
		n.waitRunning("web")
		// A new pod proves the restarted kubelet's loop is live.
		n.write("later.yaml", strings.Replace(webPod, "name: web\n", "name: later\n", 1))
		n.waitRunning("later")
		waitFor(t, 30*time.Second, "orphaned pod torn down", func() (bool, string) {
			inv := n.inventory()
			return len(inv.containers) == 4 && len(inv.netns) == 2 && len(inv.leases) == 2 && len(inv.sandboxes) == 2, fmt.Sprintf("%+v", inv)
		})
		after := n.taskPIDs()
		for id, pid := range pids {
			if owner[id] == string(goneUID) {
				continue
			}
			if after[id] != pid {
				t.Fatalf("container %s: pid %d before the restart, %d after (restarted or lost)", id, pid, after[id])
			}
		}
	})
}

// taskPIDs maps running container IDs to their task PIDs.
func (n *node) taskPIDs() map[string]uint32 {
	n.t.Helper()
	ctrs, err := n.s.ctrd.Client().Containers(n.ctx())
	if err != nil {
		n.t.Fatal(err)
	}
	out := map[string]uint32{}
	for _, c := range ctrs {
		task, err := c.Task(n.ctx(), nil)
		if err != nil {
			continue
		}
		if st, err := task.Status(n.ctx()); err == nil && st.Status == containerd.Running {
			out[c.ID()] = task.Pid()
		}
	}
	return out
}

func (n *node) podOf(id string) string {
	c, err := n.s.ctrd.Client().LoadContainer(n.ctx(), id)
	if err != nil {
		return ""
	}
	l, _ := c.Labels(n.ctx())
	return l["io.hoist.pod.uid"]
}

// TestIntegrationKubeletCleanup covers teardown paths: graceful termination
// and sandboxes orphaned by a kubelet that died while creating them.
func TestIntegrationKubeletCleanup(t *testing.T) {
	s := newSuite(t)

	t.Run("GracefulTermination", func(t *testing.T) {
		n := s.newNode(t, 21)
		hostDir := t.TempDir()
		n.start()
		n.write("polite.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: polite}
spec:
  terminationGracePeriodSeconds: 20
  volumes: [{name: out, hostPath: {path: %s}}]
  containers:
  - name: c
    image: %s
    command: [sh, -c, 'trap "echo got-term > /out/polite; exit 0" TERM; while true; do sleep 0.1; done']
    volumeMounts: [{name: out, mountPath: /out}]
`, hostDir, images.TestboxImage))
		n.write("stubborn.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: %s
    command: [sh, -c, 'trap "" TERM; while true; do sleep 0.1; done']
`, images.TestboxImage))
		n.waitRunning("polite")
		n.waitRunning("stubborn")
		start := time.Now()
		n.remove("polite.yaml")
		n.remove("stubborn.yaml")
		n.waitClean(30 * time.Second)
		took := time.Since(start)
		if b, err := os.ReadFile(filepath.Join(hostDir, "polite")); err != nil || strings.TrimSpace(string(b)) != "got-term" {
			t.Fatalf("polite container did not get SIGTERM: %q %v", b, err)
		}
		// The stubborn one ignores SIGTERM: SIGKILL after its 1 s grace,
		// long before the polite pod's 20 s would matter.
		if took < time.Second || took > 15*time.Second {
			t.Fatalf("teardown took %v, want between the 1 s grace and 15 s", took)
		}
	})

	t.Run("DeadSandboxRecreated", func(t *testing.T) {
		n := s.newNode(t, 23)
		n.start()
		n.write("web.yaml", webPod)
		n.waitRunning("web")
		oldID := n.waitRunning("web").ContainerStatuses[0].ContainerID
		before := n.inventory()
		var pauseID string
		for _, id := range before.containers {
			if len(n.inventory().netns) == 1 && "hoist-"+id[:24] == n.inventory().netns[0] {
				pauseID = id
			}
		}
		c, err := s.ctrd.Client().LoadContainer(n.ctx(), pauseID)
		if err != nil {
			t.Fatalf("load pause container %q: %v", pauseID, err)
		}
		task, err := c.Task(n.ctx(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Kill(n.ctx(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "new sandbox and container", func() (bool, string) {
			inv := n.inventory()
			if len(inv.containers) != 2 || len(inv.netns) != 1 || len(inv.leases) != 1 || len(inv.sandboxes) != 1 {
				return false, fmt.Sprintf("%+v", inv)
			}
			for _, id := range inv.containers {
				for _, old := range before.containers {
					if id == old {
						return false, "old container " + id + " still there"
					}
				}
			}
			return true, ""
		})
		var st v1.PodStatus
		waitFor(t, 30*time.Second, "status of the recreated container", func() (bool, string) {
			st = n.waitRunning("web")
			return st.ContainerStatuses[0].ContainerID != oldID, st.ContainerStatuses[0].ContainerID
		})
		waitFor(t, 20*time.Second, "recreated pod serving", func() (bool, string) {
			body, err := n.httpGet("http://" + st.PodIP + ":8080/hostname")
			return err == nil && body == n.podName("web"), fmt.Sprintf("body %q err %v", body, err)
		})
	})

	t.Run("OrphanedSandboxTornDown", func(t *testing.T) {
		n := s.newNode(t, 22)
		// Simulate a kubelet killed between CNI ADD and the pause container:
		// create a sandbox, then delete its container behind the kubelet's back.
		rt := n.runtime()
		pod := &v1.Pod{}
		pod.UID, pod.Name, pod.Namespace = "orphan-uid", "orphan", "default"
		if _, err := images.ImportWithClient(n.ctx(), s.ctrd.Client(), s.imageDir); err != nil {
			t.Fatal(err)
		}
		sb, err := rt.CreateSandbox(context.Background(), pod)
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.RemoveContainer(context.Background(), sb.ID, 0); err != nil {
			t.Fatal(err)
		}
		inv := n.inventory()
		if len(inv.containers) != 0 || len(inv.netns) != 1 || len(inv.leases) != 1 || len(inv.sandboxes) != 1 {
			t.Fatalf("setup: want only netns, lease and checkpoint, got %+v", inv)
		}
		n.start()
		n.waitClean(30 * time.Second)
	})
}

// runtime builds a runtime over the node's configuration, for tests that
// need to create state behind the kubelet's back.
func (n *node) runtime() *runtime.Runtime {
	n.t.Helper()
	cfg := n.cfg
	if err := cfg.defaults(); err != nil {
		n.t.Fatal(err)
	}
	netw := network.New(network.Config{ConfDir: cfg.CNIConfDir, BinDirs: cfg.CNIBinDirs,
		CacheDir: filepath.Join(cfg.RootDir, "cni-cache"), HostNetNS: cfg.CNIHostNetNS})
	rt, err := runtime.New(runtime.Config{Client: n.s.ctrd.Client(), Namespace: cfg.ContainerdNamespace,
		RootDir: cfg.RootDir, LogRoot: cfg.LogRoot, PauseImage: cfg.PauseImage, CgroupParent: cfg.CgroupParent,
		LogDriver: cfg.LogDriver, Network: netw})
	if err != nil {
		n.t.Fatal(err)
	}
	return rt
}
