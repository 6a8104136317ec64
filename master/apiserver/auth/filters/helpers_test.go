package filters

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/hoist-project/hoist/master/apiserver/auth/authn"
	"github.com/hoist-project/hoist/master/apiserver/auth/authz"
	"github.com/hoist-project/hoist/master/apiserver/auth/user"
	"github.com/hoist-project/hoist/master/pki"
)

type fakePods map[string]string

func (f fakePods) PodNodeName(_ context.Context, ns, name string) (string, error) {
	if n, ok := f[ns+"/"+name]; ok {
		return n, nil
	}
	return "", apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, name)
}

// seen records what reached the protected handler.
type seen struct {
	mu   sync.Mutex
	user user.Info
	body string
}

func (s *seen) get() (user.Info, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.user, s.body
}

// apiServer is a TLS test server running the real security stack in front
// of a handler that answers /version and minimal discovery.
type apiServer struct {
	*httptest.Server
	pki  *pki.PKI
	seen *seen
}

const adminToken = "0123456789abcdef-admin-token"

func startAPIServer(t *testing.T) *apiServer {
	t.Helper()
	dir := t.TempDir()
	p, err := pki.Ensure(pki.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	tokenPath := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokenPath, []byte(adminToken+`,token-admin,uid-9,"system:masters"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := authn.LoadTokenFile(tokenPath)
	if err != nil {
		t.Fatal(err)
	}
	s := &seen{}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := user.From(r.Context())
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.user, s.body = u, string(body)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/version":
			_ = json.NewEncoder(w).Encode(map[string]string{"major": "1", "minor": "32", "gitVersion": "v1.32.0-hoist-test", "platform": "linux/amd64"})
		case "/api":
			_, _ = io.WriteString(w, `{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1:6443"}]}`)
		default:
			_, _ = io.WriteString(w, `{}`)
		}
	})
	an := authn.Union{authn.X509{Roots: p.CA.Pool()}, tokens}
	az := authz.Union{authz.Masters(), authz.Discovery(), authz.Node{Pods: fakePods{"default/mine": "n1", "default/theirs": "n2"}}}
	srv := httptest.NewUnstartedServer(Wrap(inner, an, az, RequestAttributes, nil))
	if srv.TLS, err = p.ServerTLSConfig(); err != nil {
		t.Fatal(err)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &apiServer{Server: srv, pki: p, seen: s}
}

// client returns an HTTPS client trusting the cluster CA and presenting
// the given client certificate (none when certPEM is nil).
func (s *apiServer) client(t *testing.T, certPEM, keyPEM []byte) *http.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: s.pki.CA.Pool()}
	if certPEM != nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
