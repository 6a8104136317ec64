package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/tools/clientcmd"
)

func mustEnsure(t *testing.T, cfg Config) *PKI {
	t.Helper()
	p, err := Ensure(cfg)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	return p
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCertPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnsureCreatesMaterial(t *testing.T) {
	dir := t.TempDir()
	p := mustEnsure(t, Config{DataDir: dir, Hosts: []string{"192.0.2.10", "node-a"}})

	for _, f := range []string{CAKeyFile, ServingKeyFile, AdminKeyFile} {
		st, err := os.Stat(filepath.Join(dir, "pki", f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	if st, err := os.Stat(p.AdminKubeconfigPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin.kubeconfig: %v %v", st, err)
	}

	ca := readCert(t, filepath.Join(dir, "pki", CACertFile))
	if !ca.IsCA || ca.NotAfter.Sub(ca.NotBefore) < 9*365*24*time.Hour {
		t.Errorf("CA: IsCA=%v validity=%v", ca.IsCA, ca.NotAfter.Sub(ca.NotBefore))
	}
	srv := readCert(t, p.ServingCertPath)
	for _, d := range []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "node-a"} {
		if !slices.Contains(srv.DNSNames, d) {
			t.Errorf("serving cert lacks DNS SAN %q: %v", d, srv.DNSNames)
		}
	}
	for _, ip := range []string{"127.0.0.1", "10.96.0.1", "192.0.2.10"} {
		if !slices.ContainsFunc(srv.IPAddresses, func(x net.IP) bool { return x.Equal(net.ParseIP(ip)) }) {
			t.Errorf("serving cert lacks IP SAN %s: %v", ip, srv.IPAddresses)
		}
	}
	if _, err := srv.Verify(x509.VerifyOptions{Roots: p.CA.Pool(), DNSName: "kubernetes.default.svc"}); err != nil {
		t.Errorf("serving cert does not verify: %v", err)
	}
	admin := readCert(t, p.AdminCertPath)
	if admin.Subject.CommonName != AdminUser || !slices.Equal(admin.Subject.Organization, []string{MastersGroup}) {
		t.Errorf("admin subject %v", admin.Subject)
	}
	if !slices.Equal(admin.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("admin usages %v", admin.ExtKeyUsage)
	}

	kc, err := clientcmd.LoadFromFile(p.AdminKubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cur := kc.Contexts[kc.CurrentContext]
	if cur == nil || kc.Clusters[cur.Cluster].Server != DefaultServer {
		t.Fatalf("kubeconfig context/server wrong: %+v", kc)
	}
	if !bytes.Equal(kc.Clusters[cur.Cluster].CertificateAuthorityData, p.CA.CertPEM) {
		t.Error("kubeconfig CA data differs from ca.crt")
	}
	if c, err := ParseCertPEM(kc.AuthInfos[cur.AuthInfo].ClientCertificateData); err != nil || !c.Equal(admin) {
		t.Errorf("kubeconfig client cert differs from admin.crt: %v", err)
	}
}

func TestEnsureReusesOnRestart(t *testing.T) {
	dir := t.TempDir()
	p1 := mustEnsure(t, Config{DataDir: dir})
	kc1, _ := os.ReadFile(p1.AdminKubeconfigPath)
	st1, _ := os.Stat(p1.AdminKubeconfigPath)
	p2 := mustEnsure(t, Config{DataDir: dir})
	if !p1.CA.Cert.Equal(p2.CA.Cert) {
		t.Error("CA changed on restart")
	}
	if !readCert(t, p1.ServingCertPath).Equal(readCert(t, p2.ServingCertPath)) {
		t.Error("serving cert reissued although nothing changed")
	}
	kc2, _ := os.ReadFile(p2.AdminKubeconfigPath)
	st2, _ := os.Stat(p2.AdminKubeconfigPath)
	if !bytes.Equal(kc1, kc2) || !st1.ModTime().Equal(st2.ModTime()) {
		t.Error("admin.kubeconfig rewritten although nothing changed")
	}
}

func TestEnsureReissuesServingCertForNewSAN(t *testing.T) {
	dir := t.TempDir()
	p1 := mustEnsure(t, Config{DataDir: dir, Hosts: []string{"192.0.2.10"}})
	before := readCert(t, p1.ServingCertPath)
	adminBefore := readCert(t, p1.AdminCertPath)
	p2 := mustEnsure(t, Config{DataDir: dir, Hosts: []string{"192.0.2.10", "198.51.100.7", "master.example"}})
	after := readCert(t, p2.ServingCertPath)
	if before.Equal(after) {
		t.Fatal("serving cert not reissued for new SANs")
	}
	if !slices.Contains(after.DNSNames, "master.example") || !slices.ContainsFunc(after.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.ParseIP("198.51.100.7")) }) {
		t.Errorf("new SANs missing: %v %v", after.DNSNames, after.IPAddresses)
	}
	if !p1.CA.Cert.Equal(p2.CA.Cert) {
		t.Error("CA changed")
	}
	if !adminBefore.Equal(readCert(t, p2.AdminCertPath)) {
		t.Error("admin cert reissued although it still fits")
	}
}

func TestEnsureRenewsLeavesNearExpiry(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	p1 := mustEnsure(t, Config{DataDir: dir, Now: func() time.Time { return start }})
	srv1, adm1 := readCert(t, p1.ServingCertPath), readCert(t, p1.AdminCertPath)
	later := start.Add(LeafValidity - RenewBefore + time.Hour)
	p2 := mustEnsure(t, Config{DataDir: dir, Now: func() time.Time { return later }})
	if !p1.CA.Cert.Equal(p2.CA.Cert) {
		t.Error("CA changed")
	}
	srv2, adm2 := readCert(t, p2.ServingCertPath), readCert(t, p2.AdminCertPath)
	if srv1.Equal(srv2) || adm1.Equal(adm2) {
		t.Error("leaves in the renewal window were not renewed")
	}
	if !srv2.NotAfter.After(srv1.NotAfter) {
		t.Errorf("renewed serving cert expires %v, old %v", srv2.NotAfter, srv1.NotAfter)
	}
}

func TestEnsureNeverRegeneratesCA(t *testing.T) {
	dir := t.TempDir()
	mustEnsure(t, Config{DataDir: dir})
	if err := os.Remove(filepath.Join(dir, "pki", CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	_, err := Ensure(Config{DataDir: dir})
	if err == nil {
		t.Fatal("Ensure succeeded with ca.key missing; it must refuse instead of creating a new CA")
	}
	t.Log(err)
}

func TestEnsureRejectsBadServiceCIDR(t *testing.T) {
	if _, err := Ensure(Config{DataDir: t.TempDir(), ServiceCIDR: "10.96.0.0"}); err == nil {
		t.Fatal("want error for malformed service CIDR")
	}
}

func TestSignNodeClientCSR(t *testing.T) {
	p := mustEnsure(t, Config{DataDir: t.TempDir()})
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr := func(name pkix.Name) []byte {
		b, err := NewCSR(name, key)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name   string
		csr    []byte
		node   string
		wantOK bool
	}{
		{"own identity", csr(pkix.Name{CommonName: "system:node:n1", Organization: []string{NodesGroup}}), "n1", true},
		{"other node", csr(pkix.Name{CommonName: "system:node:n2", Organization: []string{NodesGroup}}), "n1", false},
		{"admin", csr(pkix.Name{CommonName: AdminUser, Organization: []string{MastersGroup}}), "n1", false},
		{"extra group", csr(pkix.Name{CommonName: "system:node:n1", Organization: []string{NodesGroup, MastersGroup}}), "n1", false},
		{"no group", csr(pkix.Name{CommonName: "system:node:n1"}), "n1", false},
		{"invalid node name", csr(pkix.Name{CommonName: "system:node:N_1", Organization: []string{NodesGroup}}), "N_1", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			certPEM, err := p.CA.SignNodeClientCSR(tc.csr, tc.node)
			if !tc.wantOK {
				if err == nil {
					t.Fatal("signed a CSR that must be refused")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cert, err := ParseCertPEM(certPEM)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: p.CA.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || cert.IsCA {
				t.Errorf("usages %v IsCA %v", cert.ExtKeyUsage, cert.IsCA)
			}
		})
	}
	sanDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: "system:node:n1", Organization: []string{NodesGroup}},
		DNSNames: []string{"kubernetes"},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	sanCSR := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: sanDER})
	if _, err := p.CA.SignNodeClientCSR(sanCSR, "n1"); !errors.Is(err, ErrSubjectNotAllowed) {
		t.Errorf("CSR with SANs: err %v, want ErrSubjectNotAllowed", err)
	}
	if _, err := p.CA.SignNodeClientCSR([]byte("garbage"), "n1"); err == nil {
		t.Error("garbage CSR accepted")
	}
}

func TestIssueKubeletServing(t *testing.T) {
	p := mustEnsure(t, Config{DataDir: t.TempDir()})
	certPEM, keyPEM, err := p.CA.IssueKubeletServing("n1", []string{"10.0.0.5"})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := ParseCertPEM(certPEM)
	key, err := ParseKeyPEM(keyPEM)
	if err != nil || !sameKey(cert, key) {
		t.Fatalf("key does not match: %v", err)
	}
	for _, host := range []string{"n1", "10.0.0.5"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: p.CA.Pool(), DNSName: host}); err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}
}

func TestExpiryCollector(t *testing.T) {
	p := mustEnsure(t, Config{DataDir: t.TempDir()})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewExpiryCollector(p.CertificateExpiries))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "hoist_certificate_expiration_timestamp_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	if len(got) != 3 || got["ca"] != float64(p.CA.Cert.NotAfter.Unix()) || got["apiserver"] == 0 || got["admin"] == 0 {
		t.Errorf("expiry metrics %v", got)
	}
}
