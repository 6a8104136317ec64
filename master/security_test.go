package master

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hoist-project/hoist/master/join"
	"github.com/hoist-project/hoist/master/pki"
	"github.com/hoist-project/hoist/master/storage/storagetest"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// tlsClient trusts the master's CA and presents cert (none when nil).
func tlsClient(t *testing.T, m *testMaster, cert *tls.Certificate) *http.Client {
	t.Helper()
	ca, err := pki.ParseCertPEM(readFile(t, filepath.Join(m.DataDir, "pki", pki.CACertFile)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{RootCAs: (&pki.CA{Cert: ca}).Pool()}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantStatus checks an HTTP answer and, for errors, its Status body.
func wantStatus(t *testing.T, what string, r response, code int, reason metav1.StatusReason) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: HTTP %d, want %d: %s", what, r.code, code, r.body)
	}
	if code < 400 {
		return
	}
	var st metav1.Status
	if err := json.Unmarshal(r.body, &st); err != nil || st.Kind != "Status" || st.Reason != reason || int(st.Code) != code {
		t.Fatalf("%s: body is not a %s Status: %s", what, reason, r.body)
	}
}

func TestIntegrationAuthTLSRejections(t *testing.T) {
	m := startMaster(t, "", nil)
	if m.Serving.InsecureAddress != "" {
		t.Fatalf("insecure address %q served without being asked for", m.Serving.InsecureAddress)
	}
	get := func(c *http.Client, path string) response {
		req, _ := http.NewRequest("GET", m.URL+path, nil)
		return send(t, c, req)
	}

	// No client certificate: the public paths answer, the API does not.
	anon := tlsClient(t, m, nil)
	wantStatus(t, "anonymous list pods", get(anon, "/api/v1/pods"), 401, metav1.StatusReasonUnauthorized)
	wantStatus(t, "anonymous /api", get(anon, "/api"), 401, metav1.StatusReasonUnauthorized)
	for _, p := range []string{"/healthz", "/livez", "/readyz", "/version"} {
		wantStatus(t, "anonymous "+p, get(anon, p), 200, "")
	}

	// A certificate from another CA is rejected even on public paths.
	other, err := pki.Ensure(pki.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	foreignPair, err := tls.LoadX509KeyPair(other.AdminCertPath, other.AdminKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	foreign := tlsClient(t, m, &foreignPair)
	wantStatus(t, "foreign-CA list pods", get(foreign, "/api/v1/pods"), 401, metav1.StatusReasonUnauthorized)
	wantStatus(t, "foreign-CA /healthz", get(foreign, "/healthz"), 401, metav1.StatusReasonUnauthorized)

	// Plain HTTP on the TLS port gets no API.
	if r, err := http.Get(strings.Replace(m.URL, "https://", "http://", 1) + "/api/v1/pods"); err == nil {
		r.Body.Close()
		if r.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS port: HTTP %d, want 400", r.StatusCode)
		}
	}

	// The admin (admin.kubeconfig) may; the expiry metric is exported.
	wantStatus(t, "admin list pods", m.get(t, m.URL+"/api/v1/pods", ""), 200, "")
	metrics := string(m.get(t, m.URL+"/metrics", "").body)
	for _, c := range []string{"ca", "apiserver", "admin"} {
		if !strings.Contains(metrics, `hoist_certificate_expiration_timestamp_seconds{certificate="`+c+`"}`) {
			t.Errorf("/metrics lacks the expiry of %s", c)
		}
	}
}

// nodeClient is a JSON clientset with the identity a node got from joining.
type nodeClient struct {
	*kubernetes.Clientset
	hc *http.Client
}

// closeIdle drops its HTTP/2 connection, so stopping the master need not
// wait out the GOAWAY grace period.
func (c nodeClient) closeIdle() { utilnet.CloseIdleConnectionsFor(c.hc.Transport) }

// joinNode joins node name through the master's join API with the
// instructions the master printed, and returns a client as that node.
func joinNode(t *testing.T, instructions, name string) nodeClient {
	t.Helper()
	cfg := join.Config{NodeName: name, Dir: t.TempDir(), Timeout: 10 * time.Second}
	for _, line := range strings.Split(instructions, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch v = strings.TrimSpace(v); strings.TrimSpace(k) {
		case "join server":
			cfg.Server = v
		case "join token":
			cfg.Token = v
		case "CA cert hash (pin)":
			cfg.CACertHash = v
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kc, err := join.Join(ctx, cfg)
	if err != nil {
		t.Fatalf("join %s with the printed instructions %q: %v", name, instructions, err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	rc.ContentType = "application/json" // the node authorizer reads create bodies as JSON
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfigAndClient(rc, hc)
	if err != nil {
		t.Fatal(err)
	}
	c := nodeClient{cs, hc}
	t.Cleanup(c.closeIdle)
	return c
}

func wantForbidden(t *testing.T, what string, err error, prefix string) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Fatalf("%s: got %v, want 403 Forbidden", what, err)
	}
	if !strings.HasPrefix(err.Error(), prefix) {
		t.Fatalf("%s: message %q, want it to start with %q", what, err.Error(), prefix)
	}
}

func TestIntegrationAuthNodeJoinAndConfinement(t *testing.T) {
	var out bytes.Buffer
	// The node controllers write the fresh Node (podCIDR, taints) and
	// would race the node's own update below into a conflict.
	m := startMaster(t, "", func(c *Config) {
		c.Stdout = &out
		c.DisableControllers = []string{"nodeipam", "nodelifecycle"}
	})
	adminHTTP, err := rest.HTTPClientFor(m.Rest)
	if err != nil {
		t.Fatal(err)
	}
	defer utilnet.CloseIdleConnectionsFor(adminHTTP.Transport)
	admin, err := kubernetes.NewForConfigAndClient(m.Rest, adminHTTP)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// A wrong token is refused by the join API.
	bad := join.Config{Server: m.Serving.AdvertisedURL, Token: "abcdef.0123456789abcdef", CACertHash: m.Serving.CACertHash,
		NodeName: "n1", Dir: t.TempDir(), Timeout: 10 * time.Second}
	if _, err := join.Join(ctx, bad); err == nil || !strings.Contains(err.Error(), "invalid or missing join token") {
		t.Fatalf("join with a wrong token: %v", err)
	}

	n1 := joinNode(t, out.String(), "n1")
	node := func(name string) *corev1.Node { return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}} }
	lease := func(name string) *coordinationv1.Lease {
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: corev1.NamespaceNodeLease}}
	}
	pod := func(name, nodeName string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	}

	// Its own Node and Lease: create, then update.
	own, err := n1.CoreV1().Nodes().Create(ctx, node("n1"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("n1 creates its Node: %v", err)
	}
	own.Labels = map[string]string{"hoist.io/joined": "true"}
	if own, err = n1.CoreV1().Nodes().Update(ctx, own, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("n1 updates its Node: %v", err)
	}
	own.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	if _, err := n1.CoreV1().Nodes().UpdateStatus(ctx, own, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("n1 updates its Node status: %v", err)
	}
	ownLease, err := n1.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, lease("n1"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("n1 creates its Lease: %v", err)
	}
	holder := "n1"
	ownLease.Spec.HolderIdentity = &holder
	if _, err := n1.CoordinationV1().Leases(corev1.NamespaceNodeLease).Update(ctx, ownLease, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("n1 renews its Lease: %v", err)
	}

	// Another node's Node, Lease and pods are off limits.
	other, err := admin.CoreV1().Nodes().Create(ctx, node("n2"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	otherLease, err := admin.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, lease("n2"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*corev1.Pod{pod("theirs", "n2"), pod("mine", "n1"), pod("unbound", "")} {
		if _, err := admin.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	other.Labels = map[string]string{"stolen": "true"}
	_, err = n1.CoreV1().Nodes().Update(ctx, other, metav1.UpdateOptions{})
	wantForbidden(t, "n1 updates Node n2", err,
		`nodes "n2" is forbidden: User "system:node:n1" cannot update resource "nodes" in API group "" at the cluster scope`)
	otherLease.Spec.HolderIdentity = &holder
	_, err = n1.CoordinationV1().Leases(corev1.NamespaceNodeLease).Update(ctx, otherLease, metav1.UpdateOptions{})
	wantForbidden(t, "n1 updates Lease n2", err,
		`leases.coordination.k8s.io "n2" is forbidden: User "system:node:n1" cannot update resource "leases" in API group "coordination.k8s.io" in the namespace "kube-node-lease"`)
	for _, name := range []string{"theirs", "unbound", "missing"} {
		err = n1.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{})
		wantForbidden(t, "n1 deletes pod "+name, err,
			`pods "`+name+`" is forbidden: User "system:node:n1" cannot delete resource "pods" in API group "" in the namespace "default"`)
	}
	if err := n1.CoreV1().Pods("default").Delete(ctx, "mine", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("n1 deletes a pod bound to it: %v", err)
	}
	_, err = n1.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.CreateOptions{})
	wantForbidden(t, "n1 creates a secret", err, `secrets "s" is forbidden: User "system:node:n1" cannot create resource "secrets"`)

	// The refused writes changed nothing.
	if got, err := admin.CoreV1().Nodes().Get(ctx, "n2", metav1.GetOptions{}); err != nil || got.Labels["stolen"] != "" {
		t.Fatalf("node n2 after the refused update: %v %v", got.Labels, err)
	}
	if _, err := admin.CoreV1().Pods("default").Get(ctx, "theirs", metav1.GetOptions{}); err != nil {
		t.Fatalf("pod theirs after the refused delete: %v", err)
	}
}

// freeAddress returns a free loopback host:port.
func freeAddress(t *testing.T) string {
	u, err := url.Parse(storagetest.FreeURL(t))
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func TestIntegrationAuthRestartKeepsCA(t *testing.T) {
	cfg := Config{
		DataDir:       t.TempDir(),
		EtcdClientURL: storagetest.FreeURL(t),
		EtcdPeerURL:   storagetest.FreeURL(t),
		SecureAddress: freeAddress(t),
		Stdout:        &bytes.Buffer{},
	}
	first := runMaster(t, cfg)
	caPath := filepath.Join(cfg.DataDir, "pki", pki.CACertFile)
	ca, kubeconfig := readFile(t, caPath), readFile(t, first.Kubeconfig)
	token := first.Serving.JoinToken
	node := joinNode(t, cfg.Stdout.(*bytes.Buffer).String(), "n1")
	node.closeIdle()
	first.Stop()

	// Restart on the same address with an extra SAN: the serving
	// certificate is reissued, the CA, token and admin.kubeconfig stay.
	cfg.TLSSANs = []string{"api.hoist.example"}
	cfg.Stdout = &bytes.Buffer{}
	second := runMaster(t, cfg)
	if !bytes.Equal(readFile(t, caPath), ca) {
		t.Fatal("the CA changed across a restart")
	}
	if !bytes.Equal(readFile(t, second.Kubeconfig), kubeconfig) {
		t.Fatal("admin.kubeconfig changed across a restart on the same address")
	}
	if second.Serving.JoinToken != token {
		t.Fatal("the join token changed across a restart")
	}
	serving, err := pki.ParseCertPEM(readFile(t, filepath.Join(cfg.DataDir, "pki", pki.ServingCertFile)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(serving.DNSNames, "api.hoist.example") {
		t.Errorf("serving certificate SANs %v lack --tls-san api.hoist.example", serving.DNSNames)
	}
	// The kubeconfig written before the restart and the node's certificate
	// from the first run both still work.
	k := newKubectl(t, second)
	if out := k.run("get", "namespaces", "-o", "name"); !strings.Contains(out, "namespace/kube-system") {
		t.Fatalf("kubectl with the pre-restart admin.kubeconfig: %s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := node.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("node certificate from before the restart: %v", err)
	}
}

func TestIntegrationAuthInsecureAddressIsOptIn(t *testing.T) {
	m := startMaster(t, "", func(c *Config) { c.InsecureAddress = "127.0.0.1:0" })
	resp, err := http.Get("http://" + m.Serving.InsecureAddress + "/api/v1/namespaces/kube-system")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("--insecure-address: HTTP %d, want 200 (unauthenticated debugging port)", resp.StatusCode)
	}
}
