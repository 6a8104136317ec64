package master

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hoist-project/hoist/master/pki"
	"github.com/hoist-project/hoist/master/storage/storagetest"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// tokenKubectl is kubectl authenticating with a bearer token only (no
// client certificate), as a pod using its service account token does.
func tokenKubectl(t *testing.T, m *testMaster, token string) *kubectl {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token.kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["hoist"] = &clientcmdapi.Cluster{Server: m.URL, CertificateAuthority: filepath.Join(m.DataDir, "pki", pki.CACertFile)}
	cfg.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["sa"] = &clientcmdapi.Context{Cluster: "hoist", AuthInfo: "sa"}
	cfg.CurrentContext = "sa"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	k := newKubectl(t, m)
	k.kubeconfig = path
	return k
}

// wantTokenUser checks that a request with k's token is authenticated as
// user: service accounts have no permissions yet, so the 403 names it.
func wantTokenUser(t *testing.T, k *kubectl, user string) {
	t.Helper()
	out, err := k.try("-n", "default", "get", "pods")
	if err == nil {
		t.Fatalf("get pods as %s succeeded, want 403:\n%s", user, out)
	}
	wantContains(t, "get pods with a service account token", out,
		`User "`+user+`" cannot list resource "pods" in API group "" in the namespace "default"`)
}

// waitUnauthorized polls until k's token is rejected with 401 (the watch
// cache may briefly still hold a deleted object).
func waitUnauthorized(t *testing.T, k *kubectl, what string) {
	t.Helper()
	waitFor(t, what, func() bool {
		out, err := k.try("-n", "default", "get", "pods")
		return err != nil && strings.Contains(out, "Unauthorized")
	})
}

func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestE2EKubectlServiceAccountToken issues tokens with kubectl create token
// and the TokenRequest API, authenticates with them, and checks they die
// with their service account or bound pod and survive a master restart.
func TestE2EKubectlServiceAccountToken(t *testing.T) {
	cfg := Config{DataDir: t.TempDir(), EtcdClientURL: storagetest.FreeURL(t), EtcdPeerURL: storagetest.FreeURL(t),
		SecureAddress: freeAddress(t), Stdout: &bytes.Buffer{}}
	m := runMaster(t, cfg)
	k := newKubectl(t, m)
	cs := kubernetes.NewForConfigOrDie(m.Rest)
	ctx := context.Background()

	waitFor(t, "the default service account", func() bool {
		_, err := k.try("-n", "default", "get", "serviceaccount", "default")
		return err == nil
	})
	token := strings.TrimSpace(k.run("create", "token", "default", "-n", "default"))
	c := jwtClaims(t, token)
	if c["sub"] != "system:serviceaccount:default:default" || c["iss"] != "https://kubernetes.default.svc.cluster.local" {
		t.Fatalf("claims %v", c)
	}
	if aud, _ := c["aud"].([]any); len(aud) != 1 || aud[0] != c["iss"] {
		t.Fatalf("default audiences %v, want the issuer", c["aud"])
	}
	if exp, iat := c["exp"].(float64), c["iat"].(float64); exp-iat != 3600 {
		t.Fatalf("default lifetime %v s, want 3600", exp-iat)
	}
	sa := tokenKubectl(t, m, token)
	wantTokenUser(t, sa, "system:serviceaccount:default:default")
	wantContains(t, "auth whoami", sa.run("auth", "whoami"), "system:serviceaccount:default:default",
		"[system:serviceaccounts system:serviceaccounts:default system:authenticated]")
	wantContains(t, "auth whoami as admin", k.run("auth", "whoami"), "system:masters")

	// Discovery lists the subresource as upstream does.
	rl, err := cs.Discovery().ServerResourcesForGroupVersion("v1")
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(rl.APIResources, func(r metav1.APIResource) bool { return r.Name == "serviceaccounts/token" })
	if i < 0 || rl.APIResources[i].Group != "authentication.k8s.io" || rl.APIResources[i].Kind != "TokenRequest" ||
		!slices.Equal(rl.APIResources[i].Verbs, []string{"create"}) {
		t.Fatalf("discovery lacks serviceaccounts/token (create TokenRequest): %+v", rl.APIResources)
	}

	// TokenRequest errors: unknown account, too short a lifetime.
	_, err = cs.CoreV1().ServiceAccounts("default").CreateToken(ctx, "nobody", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("token for a missing service account: %v, want 404", err)
	}
	short := int64(60)
	_, err = cs.CoreV1().ServiceAccounts("default").CreateToken(ctx, "default",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &short}}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("60 s token: %v, want 422", err)
	}

	// A pod-bound token lives as long as the pod.
	pod, err := cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "hst-bound"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "testbox:1"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts("default").CreateToken(ctx, "default", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if bound, _ := jwtClaims(t, tr.Status.Token)["kubernetes.io"].(map[string]any)["pod"].(map[string]any); bound["uid"] != string(pod.UID) {
		t.Fatalf("bound token claims %v", jwtClaims(t, tr.Status.Token))
	}
	podBound := tokenKubectl(t, m, tr.Status.Token)
	wantTokenUser(t, podBound, "system:serviceaccount:default:default")
	k.run("-n", "default", "delete", "pod", pod.Name)
	waitUnauthorized(t, podBound, "the pod-bound token to be rejected after the pod's deletion")

	// The signing key survives a restart, so issued tokens stay valid.
	m.Stop()
	cfg.Stdout = &bytes.Buffer{}
	m = runMaster(t, cfg)
	k = newKubectl(t, m)
	wantTokenUser(t, tokenKubectl(t, m, token), "system:serviceaccount:default:default")

	// Deleting the account revokes its tokens, even once the controller
	// has recreated "default" (a new uid).
	k.run("-n", "default", "delete", "serviceaccount", "default")
	waitUnauthorized(t, sa, "the token to be rejected after its service account's deletion")
	waitFor(t, "the default service account to be recreated", func() bool {
		_, err := k.try("-n", "default", "get", "serviceaccount", "default")
		return err == nil
	})
	if out, err := sa.try("-n", "default", "get", "pods"); err == nil || !strings.Contains(out, "Unauthorized") {
		t.Fatalf("token of the deleted account after its recreation: err=%v\n%s", err, out)
	}
}
