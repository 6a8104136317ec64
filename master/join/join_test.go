package join

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hoist-project/hoist/master/apiserver/auth/authn"
	"github.com/hoist-project/hoist/master/apiserver/auth/filters"
	"github.com/hoist-project/hoist/master/apiserver/auth/user"
	"github.com/hoist-project/hoist/master/pki"
)

type master struct {
	url   string
	pki   *pki.PKI
	token string
}

// startMaster serves the join API and, behind x509 authentication,
// /whoami, which answers with the caller's user name.
func startMaster(t *testing.T) master {
	t.Helper()
	dir := t.TempDir()
	p, err := pki.Ensure(pki.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	token, err := EnsureToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	whoami := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := user.From(r.Context())
		_, _ = io.WriteString(w, u.Name)
	})
	mux := http.NewServeMux()
	mux.Handle(PathPrefix, &Handler{Token: token, CA: p.CA})
	mux.Handle("/whoami", filters.WithAuthentication(whoami, authn.X509{Roots: p.CA.Pool()}, nil))
	srv := httptest.NewUnstartedServer(mux)
	if srv.TLS, err = p.ServerTLSConfig(); err != nil {
		t.Fatal(err)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return master{url: srv.URL, pki: p, token: token}
}

func TestJoinEndToEnd(t *testing.T) {
	m := startMaster(t)
	dir := filepath.Join(t.TempDir(), "kubelet")
	path, err := Join(context.Background(), Config{Server: m.url, Token: m.token, CACertHash: m.pki.CA.Hash(), NodeName: "n1", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("kubeconfig %s: %v %v", path, st, err)
	}
	// The kubelet will use the file through client-go: do the same.
	restCfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := rest.HTTPClientFor(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Get(m.url + "/whoami")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "system:node:n1" {
		t.Fatalf("whoami with the joined kubeconfig: %d %q", resp.StatusCode, body)
	}
}

func TestJoinRefusesWrongCAHash(t *testing.T) {
	m := startMaster(t)
	other, err := pki.Ensure(pki.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, err = Join(context.Background(), Config{Server: m.url, Token: m.token, CACertHash: other.CA.Hash(), NodeName: "n1", Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "pinned hash") {
		t.Fatalf("err %v, want a hash mismatch", err)
	}
	if _, err := os.Stat(filepath.Join(dir, KubeconfigFile)); !os.IsNotExist(err) {
		t.Error("a kubeconfig was written despite the mismatch")
	}
}

func TestJoinRefusesBadToken(t *testing.T) {
	m := startMaster(t)
	_, err := Join(context.Background(), Config{Server: m.url, Token: "abcdef.0123456789abcdef", CACertHash: m.pki.CA.Hash(), NodeName: "n1", Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "rejected the join token") || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("err %v, want a 401 token rejection", err)
	}
}

func TestJoinValidatesConfig(t *testing.T) {
	good := Config{Server: "https://127.0.0.1:6443", Token: "abcdef.0123456789abcdef", CACertHash: "sha256:" + strings.Repeat("a", 64), NodeName: "n1", Dir: "/tmp/x"}
	for name, mutate := range map[string]func(*Config){
		"http server":  func(c *Config) { c.Server = "http://127.0.0.1:6443" },
		"bad token":    func(c *Config) { c.Token = "short" },
		"no hash":      func(c *Config) { c.CACertHash = "" },
		"bad hash":     func(c *Config) { c.CACertHash = "md5:abc" },
		"bad node":     func(c *Config) { c.NodeName = "Node_1" },
		"no directory": func(c *Config) { c.Dir = "" },
	} {
		c := good
		mutate(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := good.validate(); err != nil {
		t.Errorf("good config rejected: %v", err)
	}
	file := good
	file.Dir, file.Kubeconfig = "", "/tmp/x/node.kubeconfig"
	if err := file.validate(); err != nil {
		t.Errorf("a kubeconfig path instead of a directory rejected: %v", err)
	}
}

func TestJoinWritesGivenKubeconfigPath(t *testing.T) {
	m := startMaster(t)
	want := filepath.Join(t.TempDir(), "etc", "node.kubeconfig")
	got, err := Join(context.Background(), Config{Server: m.url, Token: m.token, CACertHash: m.pki.CA.Hash(), NodeName: "n1", Kubeconfig: want})
	if err != nil || got != want {
		t.Fatalf("Join returned %q, %v; want %q", got, err, want)
	}
	cfg, err := clientcmd.LoadFromFile(want)
	if err != nil || cfg.AuthInfos["system:node:n1"] == nil {
		t.Fatalf("kubeconfig %s: %v, want the system:node:n1 user", want, err)
	}
}

// TestInstructions checks that the printed command carries exactly the
// values printed above it, with the flag names `hoist kubelet` takes.
func TestInstructions(t *testing.T) {
	server, token, hash := "https://192.0.2.1:6443", "abcdef.0123456789abcdef", "sha256:"+strings.Repeat("0f", 32)
	text := Instructions(server, token, hash)
	for _, want := range []string{
		"join server:         " + server + "\n",
		"join token:          " + token + "\n",
		"CA cert hash (pin):  " + hash + "\n",
		"\n  hoist kubelet --join-server " + server + " --join-token " + token + " --join-ca-cert-hash " + hash + "\n",
		"master's data dir (" + TokenFile + ")",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("instructions lack %q:\n%s", want, text)
		}
	}
}

// postCSR sends a hand-made request, as a malicious node might.
func postCSR(t *testing.T, m master, token, nodeName string, subject pkix.Name) (int, metav1.Status) {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(subject, key)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(NodeClientCertificateRequest{APIVersion: APIVersion, Kind: "NodeClientCertificateRequest", NodeName: nodeName, CSR: string(csr)})
	req, _ := http.NewRequest("POST", m.url+NodeClientCertificatesPath, strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+token)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: m.pki.CA.Pool()}}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st metav1.Status
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &st)
	return resp.StatusCode, st
}

func TestJoinHandlerRefusesOtherIdentities(t *testing.T) {
	m := startMaster(t)
	tests := []struct {
		name    string
		node    string
		subject pkix.Name
		want    int
	}{
		{"own identity", "n1", pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes"}}, 201},
		{"another node", "n1", pkix.Name{CommonName: "system:node:n2", Organization: []string{"system:nodes"}}, 403},
		{"admin", "n1", pkix.Name{CommonName: "kubernetes-admin", Organization: []string{"system:masters"}}, 403},
		{"node plus masters", "n1", pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes", "system:masters"}}, 403},
		{"invalid node name", "N_1", pkix.Name{CommonName: "system:node:N_1", Organization: []string{"system:nodes"}}, 400},
	}
	for _, tc := range tests {
		code, st := postCSR(t, m, m.token, tc.node, tc.subject)
		if code != tc.want {
			t.Errorf("%s: HTTP %d, want %d (%s)", tc.name, code, tc.want, st.Message)
		}
		if tc.want == 403 && (st.Kind != "Status" || st.Reason != metav1.StatusReasonForbidden) {
			t.Errorf("%s: not a Forbidden Status: %+v", tc.name, st)
		}
	}
	if code, st := postCSR(t, m, "", "n1", pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes"}}); code != 401 || st.Reason != metav1.StatusReasonUnauthorized {
		t.Errorf("no token: %d %+v", code, st)
	}
}

func TestEnsureToken(t *testing.T) {
	dir := t.TempDir()
	tok, err := EnsureToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateToken(tok); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, TokenFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st, err)
	}
	again, err := EnsureToken(dir)
	if err != nil || again != tok {
		t.Fatalf("restart changed the token: %q -> %q (%v)", tok, again, err)
	}
	if err := os.WriteFile(filepath.Join(dir, TokenFile), []byte("not-a-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureToken(dir); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("malformed token file: %v", err)
	}
	seen := map[string]bool{}
	for range 100 {
		tok, err := GenerateToken()
		if err != nil || ValidateToken(tok) != nil || seen[tok] {
			t.Fatalf("GenerateToken: %q %v", tok, err)
		}
		seen[tok] = true
	}
}
