package filters

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hoist-project/hoist/master/apiserver/auth/user"
	"github.com/hoist-project/hoist/master/pki"
)

type reply struct {
	code   int
	status metav1.Status
	raw    string
}

func do(t *testing.T, c *http.Client, method, url, body, bearer string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, raw: string(raw)}
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(raw, &r.status); err != nil {
			t.Fatalf("%s %s: error body is not a Status: %q", method, url, raw)
		}
		if r.status.Kind != "Status" || r.status.APIVersion != "v1" || r.status.Status != metav1.StatusFailure || int(r.status.Code) != resp.StatusCode {
			t.Errorf("%s %s: malformed Status %+v", method, url, r.status)
		}
	}
	return r
}

func TestAdminCertificateIsAllowed(t *testing.T) {
	s := startAPIServer(t)
	c := s.client(t, readFile(t, s.pki.AdminCertPath), readFile(t, s.pki.AdminKeyPath))
	if r := do(t, c, "DELETE", s.URL+"/api/v1/namespaces/default/pods/theirs", "", ""); r.code != 200 {
		t.Fatalf("admin delete: %d %s", r.code, r.raw)
	}
	u, _ := s.seen.get()
	if u.Name != pki.AdminUser || !slices.Contains(u.Groups, user.MastersGroup) || !slices.Contains(u.Groups, user.AllAuthenticated) {
		t.Errorf("handler saw user %+v", u)
	}
}

func TestForeignCACertificateIsUnauthorized(t *testing.T) {
	s := startAPIServer(t)
	other, err := pki.Ensure(pki.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c := s.client(t, readFile(t, other.AdminCertPath), readFile(t, other.AdminKeyPath))
	for _, path := range []string{"/api/v1/pods", "/healthz"} {
		r := do(t, c, "GET", s.URL+path, "", "")
		if r.code != 401 || r.status.Reason != metav1.StatusReasonUnauthorized || r.status.Message != "Unauthorized" {
			t.Errorf("GET %s with foreign cert: %d %s", path, r.code, r.raw)
		}
	}
}

func TestAnonymousOnlyReachesPublicPaths(t *testing.T) {
	s := startAPIServer(t)
	c := s.client(t, nil, nil)
	for path, want := range map[string]int{
		"/api": 401, "/api/v1/pods": 401, "/apis": 401, "/metrics": 401, "/healthzz": 401,
		"/healthz": 200, "/healthz/etcd": 200, "/livez": 200, "/readyz": 200, "/version": 200,
	} {
		r := do(t, c, "GET", s.URL+path, "", "")
		if r.code != want {
			t.Errorf("anonymous GET %s: %d, want %d (%s)", path, r.code, want, r.raw)
		}
		if want == 200 {
			if u, _ := s.seen.get(); u.Name != user.Anonymous {
				t.Errorf("GET %s reached handler as %q", path, u.Name)
			}
		}
	}
	if r := do(t, c, "POST", s.URL+"/healthz", "", ""); r.code != 403 {
		t.Errorf("anonymous POST /healthz: %d, want 403", r.code)
	}
}

func TestBearerToken(t *testing.T) {
	s := startAPIServer(t)
	c := s.client(t, nil, nil)
	if r := do(t, c, "GET", s.URL+"/api/v1/secrets", "", adminToken); r.code != 200 {
		t.Errorf("valid token: %d %s", r.code, r.raw)
	}
	if u, _ := s.seen.get(); u.Name != "token-admin" || u.UID != "uid-9" {
		t.Errorf("token user %+v", u)
	}
	for _, path := range []string{"/api/v1/secrets", "/healthz"} {
		if r := do(t, c, "GET", s.URL+path, "", "wrong-token"); r.code != 401 {
			t.Errorf("bad token on %s: %d, want 401", path, r.code)
		}
	}
}

func nodeClient(t *testing.T, s *apiServer, name string) *http.Client {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewNodeClientCSR(name, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := s.pki.CA.SignNodeClientCSR(csr, name)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	return s.client(t, certPEM, keyPEM)
}

func TestNodeIdentityIsConfined(t *testing.T) {
	s := startAPIServer(t)
	c := nodeClient(t, s, "n1")
	tests := []struct {
		method, path, body string
		want               int
		message            string
	}{
		{"GET", "/api/v1/nodes", "", 200, ""},
		{"GET", "/api", "", 200, ""},
		{"DELETE", "/api/v1/namespaces/default/pods/mine", "", 200, ""},
		{"DELETE", "/api/v1/namespaces/default/pods/theirs", "", 403,
			`pods "theirs" is forbidden: User "system:node:n1" cannot delete resource "pods" in API group "" in the namespace "default": pod default/theirs is not bound to node "n1"`},
		{"PUT", "/api/v1/nodes/n2/status", "{}", 403,
			`nodes "n2" is forbidden: User "system:node:n1" cannot update resource "nodes/status" in API group "" at the cluster scope: node "n1" may only update its own node, not "n2"`},
		{"PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", "{}", 200, ""},
		{"PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n2", "{}", 403, ""},
		{"POST", "/api/v1/nodes", `{"metadata":{"name":"n1"}}`, 200, ""},
		{"POST", "/api/v1/nodes", `{"metadata":{"name":"n2"}}`, 403, ""},
		{"POST", "/api/v1/namespaces/kube-system/pods", `{"metadata":{"name":"etcd-n1"},"spec":{"nodeName":"n1"}}`, 200, ""},
		{"POST", "/api/v1/namespaces/kube-system/pods", `{"metadata":{"name":"x"},"spec":{"nodeName":"n2"}}`, 403, ""},
		{"POST", "/api/v1/namespaces/default/secrets", `{"metadata":{"name":"s"}}`, 403, ""},
		{"GET", "/metrics", "", 403, `forbidden: User "system:node:n1" cannot get path "/metrics"`},
	}
	for _, tc := range tests {
		r := do(t, c, tc.method, s.URL+tc.path, tc.body, "")
		if r.code != tc.want {
			t.Errorf("%s %s: %d, want %d (%s)", tc.method, tc.path, r.code, tc.want, r.raw)
			continue
		}
		if tc.want == 403 && r.status.Reason != metav1.StatusReasonForbidden {
			t.Errorf("%s %s: reason %q", tc.method, tc.path, r.status.Reason)
		}
		if tc.message != "" && r.status.Message != tc.message {
			t.Errorf("%s %s: message\n got %s\nwant %s", tc.method, tc.path, r.status.Message, tc.message)
		}
		if tc.want == 200 && tc.body != "" {
			if _, body := s.seen.get(); body != tc.body {
				t.Errorf("%s %s: handler got body %q, want %q", tc.method, tc.path, body, tc.body)
			}
		}
	}
}
