package pki

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Kubeconfig is a single-cluster, single-user kubeconfig with embedded
// certificate data (so the file alone is enough to connect).
type Kubeconfig struct {
	Server      string
	ClusterName string
	UserName    string
	CAPEM       []byte
	CertPEM     []byte
	KeyPEM      []byte
}

// WriteKubeconfig writes k to path (0600, it holds a private key) unless the
// file already has exactly this content; it reports whether it wrote.
func WriteKubeconfig(path string, k Kubeconfig) (bool, error) {
	if k.Server == "" || k.ClusterName == "" || k.UserName == "" {
		return false, errors.New("kubeconfig: server, cluster name and user name are required")
	}
	ctxName := k.UserName + "@" + k.ClusterName
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[k.ClusterName] = &clientcmdapi.Cluster{Server: k.Server, CertificateAuthorityData: k.CAPEM}
	cfg.AuthInfos[k.UserName] = &clientcmdapi.AuthInfo{ClientCertificateData: k.CertPEM, ClientKeyData: k.KeyPEM}
	cfg.Contexts[ctxName] = &clientcmdapi.Context{Cluster: k.ClusterName, AuthInfo: k.UserName}
	cfg.CurrentContext = ctxName
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return false, fmt.Errorf("kubeconfig: %w", err)
	}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("kubeconfig: %w", err)
	}
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}
