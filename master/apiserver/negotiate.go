package apiserver

import (
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// format is the negotiated response representation.
type format struct {
	yaml  bool
	table bool
}

// negotiate picks the first Accept entry we can serve: JSON, YAML, or a
// meta.k8s.io Table. Protobuf and CBOR entries are skipped (clients always
// list JSON as a fallback).
func negotiate(r *http.Request) (format, bool) {
	accept := r.Header.Get("Accept")
	if accept == "" {
		return format{}, true
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/json", "*/*", "application/*":
			if params["as"] == "Table" {
				if params["g"] == "meta.k8s.io" && (params["v"] == "v1" || params["v"] == "v1beta1") {
					return format{table: true}, true
				}
				continue
			}
			if params["as"] != "" {
				continue // e.g. PartialObjectMetadata or aggregated discovery
			}
			return format{}, true
		case "application/yaml":
			if params["as"] == "" {
				return format{yaml: true}, true
			}
		}
	}
	return format{}, false
}

// encode serializes obj (JSON, or YAML when asked).
func encode(obj any, f format) ([]byte, string, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, "", err
	}
	if f.yaml {
		y, err := yaml.JSONToYAML(data)
		return y, "application/yaml", err
	}
	return data, "application/json", nil
}

func writeObject(w http.ResponseWriter, r *http.Request, code int, obj any) {
	f, ok := negotiate(r)
	if !ok {
		f = format{}
	}
	f.table = false
	writeFormatted(w, code, obj, f)
}

func writeFormatted(w http.ResponseWriter, code int, obj any, f format) {
	data, ct, err := encode(obj, f)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(code)
	_, _ = w.Write(data)
}

// writeError writes err as a metav1.Status with its HTTP code, and the
// status's retry hint as a Retry-After header (as upstream), which
// client-go obeys by retrying the request itself.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	st := statusOf(err)
	if st.Details != nil && st.Details.RetryAfterSeconds > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(st.Details.RetryAfterSeconds)))
	}
	writeObject(w, r, int(st.Code), st)
}

func statusOf(err error) *metav1.Status {
	var st metav1.Status
	if s, ok := err.(apierrors.APIStatus); ok {
		st = s.Status()
	} else {
		st = apierrors.NewInternalError(err).Status()
	}
	st.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}
	return &st
}
