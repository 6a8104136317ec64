package kubelet

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/record"

	"github.com/hoist-project/hoist/packaging/images"
)

// eventLog collects the events a kubelet records (no API in this harness).
type eventLog struct {
	mu   sync.Mutex
	seen []string
}

func (l *eventLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.seen, "\n")
}

// collect drains rec until done closes (FakeRecorder blocks when full).
func (l *eventLog) collect(rec *record.FakeRecorder, done <-chan struct{}) {
	for {
		select {
		case e := <-rec.Events:
			l.mu.Lock()
			l.seen = append(l.seen, e)
			l.mu.Unlock()
		case <-done:
			return
		}
	}
}

// TestIntegrationKubeletLifecycleHooks runs postStart and preStop exec hooks
// in real containers: postStart writes a file the main process waits for
// and prints (its CRI log shows it; the hook renames the file into place so
// the main process never reads it half-written), preStop writes into a hostPath file
// that is checked after the pod is gone, and a failing postStart gets its
// container killed and restarted with a FailedPostStartHook event.
func TestIntegrationKubeletLifecycleHooks(t *testing.T) {
	s := newSuite(t)
	rec := record.NewFakeRecorder(100)
	events := &eventLog{}
	done := make(chan struct{})
	go events.collect(rec, done)
	t.Cleanup(func() { close(done) }) // registered before newNode's: runs after the kubelet's teardown
	n := s.newNode(t, 61)
	n.cfg.Events = rec
	n.start()

	hostDir := filepath.Join(t.TempDir(), "prestop")
	n.write("hooks.yaml", podYAML("hooks", fmt.Sprintf(`  volumes:
  - name: out
    hostPath: {path: %s, type: DirectoryOrCreate}
  containers:
  - name: main
    image: `+images.TestboxImage+`
    command: [sh, -c, 'while [ ! -f /tmp/poststart ]; do sleep 0.1; done; cat /tmp/poststart; exec sleep 3600']
    volumeMounts: [{name: out, mountPath: /out}]
    lifecycle:
      postStart:
        exec: {command: [sh, -c, 'echo written-by-poststart > /tmp/ps.tmp && mv /tmp/ps.tmp /tmp/poststart']}
      preStop:
        exec: {command: [sh, -c, 'echo written-by-prestop > /out/prestop']}
`, hostDir)))
	n.write("badhook.yaml", podYAML("badhook", `  containers:
  - name: main
    image: `+images.TestboxImage+`
    command: [sh, -c, 'exec sleep 3600']
    lifecycle:
      postStart:
        exec: {command: [sh, -c, 'echo hook-says-no; exit 3']}
`))

	n.waitRunning("hooks")
	uid := string(n.statuses.pod(n.podName("hooks")).UID)
	waitFor(t, 30*time.Second, "main printed the postStart file", func() (bool, string) {
		log := n.readLog("hooks", uid, "main", 0)
		st, _ := n.statuses.get(n.podName("hooks"))
		return strings.Contains(log, "written-by-poststart"), fmt.Sprintf("log %q, status %+v", log, st.ContainerStatuses)
	})

	badhook := n.podName("badhook")
	waitFor(t, 60*time.Second, "badhook restarted after its failed postStart, with the event", func() (bool, string) {
		st, _ := n.statuses.get(badhook)
		restarts := int32(-1)
		for _, cs := range st.ContainerStatuses {
			restarts = cs.RestartCount
		}
		ev := events.String()
		return restarts >= 1 && strings.Contains(ev, "Warning FailedPostStartHook") && strings.Contains(ev, "exited with 3: hook-says-no"),
			fmt.Sprintf("restarts %d, events:\n%s", restarts, ev)
	})
	if strings.Contains(events.String(), "FailedPreStopHook") {
		t.Fatalf("a preStop hook failed:\n%s", events)
	}

	if _, err := os.Stat(filepath.Join(hostDir, "prestop")); err == nil {
		t.Fatal("preStop ran before the pod was deleted")
	}
	n.remove("hooks.yaml")
	n.remove("badhook.yaml")
	n.waitClean(60 * time.Second)
	b, err := os.ReadFile(filepath.Join(hostDir, "prestop"))
	if err != nil || strings.TrimSpace(string(b)) != "written-by-prestop" {
		t.Fatalf("preStop output %q (%v), want written-by-prestop", b, err)
	}
}
