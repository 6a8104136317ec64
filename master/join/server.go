package join

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/hoist-project/hoist/master/apiserver/auth/authn"
	"github.com/hoist-project/hoist/master/apiserver/auth/status"
	"github.com/hoist-project/hoist/master/pki"
)

// maxRequestBody bounds a join request (a CSR is well under 1 KiB).
const maxRequestBody = 64 << 10

// Handler serves the join API on the master.
type Handler struct {
	Token string
	CA    *pki.CA
	// Log records every issued certificate and refusal (nil discards).
	Log *slog.Logger
}

func nodeCertResource() schema.GroupResource {
	return schema.GroupResource{Group: Group, Resource: "nodeclientcertificates"}
}

func (h *Handler) log() *slog.Logger {
	if h.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Log
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case CACertificatePath:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			status.Write(w, apierrors.NewMethodNotSupported(schema.GroupResource{Group: Group, Resource: "clustercacertificate"}, r.Method))
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(h.CA.CertPEM)
	case NodeClientCertificatesPath:
		if r.Method != http.MethodPost {
			status.Write(w, apierrors.NewMethodNotSupported(nodeCertResource(), r.Method))
			return
		}
		h.issue(w, r)
	default:
		status.Write(w, apierrors.NewNotFound(schema.GroupResource{Group: Group}, r.URL.Path))
	}
}

func (h *Handler) issue(w http.ResponseWriter, r *http.Request) {
	token, ok := authn.BearerToken(r)
	if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(h.Token)) != 1 {
		h.log().Warn("join refused: invalid or missing join token", "remote", r.RemoteAddr)
		status.Write(w, apierrors.NewUnauthorized("invalid or missing join token: use the token the master printed (also in its data dir, file join-token)"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil || len(body) > maxRequestBody {
		status.Write(w, apierrors.NewBadRequest(fmt.Sprintf("join request body unreadable or larger than %d bytes", maxRequestBody)))
		return
	}
	var req NodeClientCertificateRequest
	if err := json.Unmarshal(body, &req); err != nil {
		status.Write(w, apierrors.NewBadRequest("join request is not a NodeClientCertificateRequest: "+err.Error()))
		return
	}
	certPEM, err := h.CA.SignNodeClientCSR([]byte(req.CSR), req.NodeName)
	if errors.Is(err, pki.ErrSubjectNotAllowed) {
		h.log().Warn("join refused: CSR for another identity", "node", req.NodeName, "remote", r.RemoteAddr, "err", err)
		status.Write(w, apierrors.NewForbidden(nodeCertResource(), req.NodeName, err))
		return
	}
	if err != nil {
		status.Write(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	h.log().Info("issued node client certificate", "node", req.NodeName, "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(NodeClientCertificate{
		APIVersion:    APIVersion,
		Kind:          "NodeClientCertificate",
		NodeName:      req.NodeName,
		Certificate:   string(certPEM),
		CACertificate: string(h.CA.CertPEM),
	})
}
