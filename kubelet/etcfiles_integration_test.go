package kubelet

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoist-project/hoist/packaging/images"
)

// testEtcFiles is a subtest of TestIntegrationKubelet: containers see the
// kubelet-managed /etc/hosts (pod IP and hostname, hostAliases) and
// /etc/resolv.conf (the node's, plus dnsConfig).
func testEtcFiles(t *testing.T, s *suite) {
	n := s.newNode(t, 18)
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n.cfg.ResolvConf = resolv
	n.start()
	n.write("etc.yaml", podYAML("etc", `  hostAliases: [{ip: 10.9.8.7, hostnames: [alias.test]}]
  dnsConfig: {searches: [hoist.test]}
  containers:
  - name: c
    image: `+images.TestboxImage+`
    command: [sh, -c, 'cat /etc/hosts /etc/resolv.conf; exec sleep 3600']
`))
	st := n.waitRunning("etc")
	uid := string(n.statuses.pod(n.podName("etc")).UID)
	waitFor(t, 30*time.Second, "/etc files in the container log", func() (bool, string) {
		log := n.readLog("etc", uid, "c", 0)
		for _, want := range []string{
			fmt.Sprintf("%s\t%s", st.PodIP, n.podName("etc")), "10.9.8.7\talias.test", "nameserver 192.0.2.53", "search hoist.test",
		} {
			if !strings.Contains(log, want) {
				return false, fmt.Sprintf("missing %q in:\n%s", want, log)
			}
		}
		return true, ""
	})
	n.remove("etc.yaml")
	n.waitClean(30 * time.Second)
}
