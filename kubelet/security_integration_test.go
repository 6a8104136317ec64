package kubelet

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/packaging/images"
)

// TestIntegrationKubeletSecurityAndTermination runs containers with
// securityContext settings and termination messages on a real containerd
// and checks what the processes saw (their CRI logs) and what the kubelet
// reported.
func TestIntegrationKubeletSecurityAndTermination(t *testing.T) {
	s := newSuite(t)
	n := s.newNode(t, 31)
	n.cfg.ContainerLogMaxSize, n.cfg.ContainerLogMaxFiles = 4096, 2
	n.start()
	probe := `id -u; id -g; id -G; if touch /rootfs-probe 2>/dev/null; then echo rootfs=rw; else echo rootfs=ro; fi; grep -E 'NoNewPrivs|CapBnd' /proc/self/status`
	n.write("sec.yaml", podYAML("sec", `  restartPolicy: Never
  securityContext: {runAsUser: 1000, runAsGroup: 2000, supplementalGroups: [3000]}
  containers:
  - name: c
    image: `+images.TestboxImage+`
    securityContext:
      runAsUser: 1234
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
    command: [sh, -c, "`+probe+`; printf bye > /dev/termination-log; exit 3"]
`))
	n.write("priv.yaml", podYAML("priv", `  restartPolicy: Never
  containers:
  - name: c
    image: `+images.TestboxImage+`
    securityContext: {privileged: true}
    command: [sh, -c, "`+probe+`"]
`))
	n.write("fallback.yaml", podYAML("fallback", `  restartPolicy: OnFailure
  containers:
  - name: c
    image: `+images.TestboxImage+`
    terminationMessagePolicy: FallbackToLogsOnError
    command: [sh, -c, 'echo first; echo last-words >&2; exit 2']
`))
	n.write("chatty.yaml", podYAML("chatty", `  restartPolicy: Never
  containers:
  - name: c
    image: `+images.TestboxImage+`
    command: [sh, -c, "for i in $(seq 1 300); do echo line-$i-of-a-chatty-container; done"]
`))

	sec := waitTerminated(t, n, "sec")
	if sec.ExitCode != 3 || sec.Message != "bye" {
		t.Errorf("sec terminated with code %d, message %q; want 3, \"bye\"", sec.ExitCode, sec.Message)
	}
	secLog := n.readLog("sec", string(n.statuses.pod(n.podName("sec")).UID), "c", 0)
	// CAP_NET_BIND_SERVICE is bit 10.
	for _, re := range []string{`F 1234\n`, `F 2000\n`, `F 2000 3000\n`, `F rootfs=ro\n`, `NoNewPrivs:\s+1\n`, `CapBnd:\s+0000000000000400\n`} {
		if !regexp.MustCompile(re).MatchString(secLog) {
			t.Errorf("sec log lacks %q:\n%s", re, secLog)
		}
	}

	priv := waitTerminated(t, n, "priv")
	if priv.ExitCode != 0 || priv.Message != "" {
		t.Errorf("priv terminated with code %d, message %q; want 0 and none", priv.ExitCode, priv.Message)
	}
	privLog := n.readLog("priv", string(n.statuses.pod(n.podName("priv")).UID), "c", 0)
	hostCaps := regexp.MustCompile(`CapBnd:\s+(\w+)`).FindStringSubmatch(string(testenv.ReadFile(t, "/proc/self/status")))
	for _, want := range []string{"F 0\n", "F rootfs=rw\n", "NoNewPrivs:\t0\n", "CapBnd:\t" + hostCaps[1] + "\n"} {
		if !strings.Contains(privLog, want) {
			t.Errorf("priv log lacks %q:\n%s", want, privLog)
		}
	}

	// The failed run's log tail becomes the message, kept as lastState when
	// the container restarts.
	waitFor(t, 60*time.Second, "fallback restarted with the log tail as last message", func() (bool, string) {
		st, ok := n.statuses.get(n.podName("fallback"))
		if !ok || len(st.ContainerStatuses) == 0 {
			return false, "no status"
		}
		cs := st.ContainerStatuses[0]
		last := cs.LastTerminationState.Terminated
		return cs.RestartCount >= 1 && last != nil && last.ExitCode == 2 && last.Message == "first\nlast-words", fmt.Sprintf("%+v", cs)
	})

	// 300 lines of ~70 bytes rotate at 4 KiB; one rotated file is kept.
	waitTerminated(t, n, "chatty")
	logDir := filepath.Join(n.cfg.LogRoot, "default_"+n.podName("chatty")+"_"+string(n.statuses.pod(n.podName("chatty")).UID), "c")
	// The logging driver may still be writing when the exit is seen.
	waitFor(t, 30*time.Second, "chatty log rotated", func() (bool, string) {
		files, _ := filepath.Glob(filepath.Join(logDir, "0.log*"))
		cur, _ := os.ReadFile(filepath.Join(logDir, "0.log"))
		return len(files) == 2 && strings.HasSuffix(string(cur), " stdout F line-300-of-a-chatty-container\n"),
			fmt.Sprintf("files %v, current log:\n%s", files, cur)
	})
	files, _ := filepath.Glob(filepath.Join(logDir, "0.log*"))
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 4096 {
			t.Errorf("%s has %d bytes; want at most 4096", f, st.Size())
		}
	}

	for _, f := range []string{"sec.yaml", "priv.yaml", "fallback.yaml", "chatty.yaml"} {
		n.remove(f)
	}
	n.waitClean(60 * time.Second)
}

// waitTerminated waits until the pod's first container has terminated.
func waitTerminated(t *testing.T, n *node, name string) *v1.ContainerStateTerminated {
	t.Helper()
	var term *v1.ContainerStateTerminated
	waitFor(t, 60*time.Second, name+" terminated", func() (bool, string) {
		st, ok := n.statuses.get(n.podName(name))
		if !ok || len(st.ContainerStatuses) == 0 {
			return false, "no container status"
		}
		term = st.ContainerStatuses[0].State.Terminated
		return term != nil, fmt.Sprintf("%+v", st.ContainerStatuses[0].State)
	})
	return term
}
