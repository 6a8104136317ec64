package filters

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/master/apiserver/auth/user"
	"github.com/hoist-project/hoist/master/pki"
)

// TestKubectlUsesAdminKubeconfig proves admin.kubeconfig (CA, client cert,
// server URL) is right by driving the real kubectl through the security
// stack.
func TestKubectlUsesAdminKubeconfig(t *testing.T) {
	kubectl := testenv.RequireCommand(t, "kubectl", "kubectl")
	s := startAPIServer(t)
	// Rewrite the kubeconfig for this server's random port.
	p, err := pki.Ensure(pki.Config{DataDir: filepath.Dir(s.pki.Dir), AdminServer: s.URL})
	if err != nil {
		t.Fatal(err)
	}
	run := func(kubeconfig string, args ...string) (string, error) {
		cmd := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run(p.AdminKubeconfigPath, "version", "-o", "json")
	if err != nil {
		t.Fatalf("kubectl version: %v\n%s", err, out)
	}
	var v struct {
		ServerVersion struct {
			GitVersion string `json:"gitVersion"`
		} `json:"serverVersion"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.ServerVersion.GitVersion != "v1.32.0-hoist-test" {
		t.Fatalf("kubectl version did not report the server version (err %v):\n%s", err, out)
	}
	if u, _ := s.seen.get(); u.Name != pki.AdminUser || !u.InGroup(user.MastersGroup) {
		t.Errorf("kubectl was not authenticated by its client certificate: server saw %+v", u)
	}

	out, err = run(p.AdminKubeconfigPath, "get", "--raw", "/api")
	if err != nil || !strings.Contains(out, `"APIVersions"`) {
		t.Fatalf("kubectl get --raw /api: %v\n%s", err, out)
	}

	// A kubeconfig whose client certificate comes from another CA is refused.
	other, err := pki.Ensure(pki.Config{DataDir: t.TempDir(), AdminServer: s.URL})
	if err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(t.TempDir(), "foreign.kubeconfig")
	if _, err := pki.WriteKubeconfig(foreign, pki.Kubeconfig{
		Server: s.URL, ClusterName: "hoist", UserName: "intruder",
		CAPEM: p.CA.CertPEM, CertPEM: readFile(t, other.AdminCertPath), KeyPEM: readFile(t, other.AdminKeyPath),
	}); err != nil {
		t.Fatal(err)
	}
	out, err = run(foreign, "get", "--raw", "/api")
	if err == nil || !strings.Contains(out, "Unauthorized") {
		t.Fatalf("kubectl with a foreign client certificate: err %v, want Unauthorized:\n%s", err, out)
	}
}
