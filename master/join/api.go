// Package join lets a new node obtain its kubelet client certificate from
// the master with a shared join token, kubeadm style: the node pins the
// cluster CA by hash, generates its key locally and sends only a CSR; the
// master checks the token and that the CSR asks for exactly the node's own
// identity, then signs it. See docs/security.md for the flow.
package join

// API paths served by Handler. Mount Handler at PathPrefix outside the API
// server's authentication filter: it authenticates with the join token.
const (
	Group      = "join.hoist.io"
	APIVersion = Group + "/v1"
	PathPrefix = "/apis/" + APIVersion + "/"
	// CACertificatePath serves the cluster CA certificate (PEM) to anyone;
	// joining nodes verify it against their pinned hash.
	CACertificatePath = PathPrefix + "clustercacertificate"
	// NodeClientCertificatesPath accepts a NodeClientCertificateRequest.
	NodeClientCertificatesPath = PathPrefix + "nodeclientcertificates"
)

// NodeClientCertificateRequest is POSTed with "Authorization: Bearer <join token>".
type NodeClientCertificateRequest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	NodeName   string `json:"nodeName"`
	// CSR is a PEM CERTIFICATE REQUEST for CN=system:node:<nodeName>, O=system:nodes.
	CSR string `json:"csr"`
}

// NodeClientCertificate is the answer: the signed certificate and the CA.
type NodeClientCertificate struct {
	APIVersion    string `json:"apiVersion"`
	Kind          string `json:"kind"`
	NodeName      string `json:"nodeName"`
	Certificate   string `json:"certificate"`
	CACertificate string `json:"caCertificate"`
}
