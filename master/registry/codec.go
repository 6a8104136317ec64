package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// MaxObjectBytes is the largest request body accepted, as upstream (3 MiB).
const MaxObjectBytes = 3 * 1024 * 1024

// DecodeError is a body that could not be turned into the expected object.
type DecodeError struct{ Msg string }

func (e *DecodeError) Error() string { return e.Msg }

// Decoded is a request body decoded into a typed object, with the unknown
// or duplicate fields a strict decode would have rejected.
type Decoded struct {
	Obj    runtime.Object
	Strict []string
}

// ProtobufContentType is Kubernetes' protobuf media type.
const ProtobufContentType = "application/vnd.kubernetes.protobuf"

// ToJSON converts a YAML, protobuf or JSON body to JSON. Protobuf bodies
// (client-go's typed clients send them) are decoded with the scheme.
func ToJSON(scheme *runtime.Scheme, body []byte, contentType string) ([]byte, error) {
	if strings.HasPrefix(contentType, ProtobufContentType) {
		obj, gvk, err := protobuf.NewSerializer(scheme, scheme).Decode(body, nil, nil)
		if err != nil {
			return nil, &DecodeError{fmt.Sprintf("invalid protobuf body: %v", err)}
		}
		obj.GetObjectKind().SetGroupVersionKind(*gvk)
		return json.Marshal(obj)
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, &DecodeError{"request body is empty"}
	}
	if strings.Contains(contentType, "yaml") || trimmed[0] != '{' {
		j, err := yaml.YAMLToJSON(body)
		if err != nil {
			return nil, &DecodeError{fmt.Sprintf("invalid YAML: %v", err)}
		}
		return j, nil
	}
	return body, nil
}

// Decode decodes a JSON body into a new object of kind gvk. The body's
// apiVersion and kind must match.
//
// The common case (a well-formed body of the right kind) parses the body
// once: the typed object's TypeMeta carries apiVersion and kind. Only when
// that fails or names another kind is the body parsed for its type alone,
// so errors are reported as before: the kind mismatch first, then the
// decoding error.
func Decode(scheme *runtime.Scheme, gvk schema.GroupVersionKind, body []byte) (*Decoded, error) {
	obj, err := scheme.New(gvk)
	if err != nil {
		return nil, err
	}
	strict, decodeErr := kjson.UnmarshalStrict(body, obj)
	if decodeErr != nil || !typeMatches(obj, gvk) {
		if err := checkTypeMeta(gvk, body); err != nil {
			return nil, err
		}
	}
	if decodeErr != nil {
		return nil, &DecodeError{fmt.Sprintf("cannot decode %s: %v", gvk.Kind, decodeErr)}
	}
	d := &Decoded{Obj: obj}
	for _, e := range strict {
		d.Strict = append(d.Strict, e.Error())
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return d, nil
}

// typeMatches reports whether the apiVersion and kind decoded into obj
// fit an endpoint of kind want (an empty apiVersion does).
func typeMatches(obj runtime.Object, want schema.GroupVersionKind) bool {
	t, err := meta.TypeAccessor(obj)
	if err != nil {
		return false
	}
	return t.GetKind() == want.Kind && (t.GetAPIVersion() == "" || t.GetAPIVersion() == want.GroupVersion().String())
}

// checkTypeMeta parses only apiVersion and kind, for a clear error about
// an invalid body or one of the wrong kind.
func checkTypeMeta(gvk schema.GroupVersionKind, body []byte) error {
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(body, &tm); err != nil {
		return &DecodeError{fmt.Sprintf("invalid JSON: %v", err)}
	}
	if tm.Kind == "" {
		return &DecodeError{fmt.Sprintf("Object 'Kind' is missing in the request body; expected %q", gvk.Kind)}
	}
	if tm.Kind != gvk.Kind || (tm.APIVersion != "" && tm.APIVersion != gvk.GroupVersion().String()) {
		return &DecodeError{fmt.Sprintf("the object in the request body is %s %s, this endpoint expects %s %s",
			tm.APIVersion, tm.Kind, gvk.GroupVersion().String(), gvk.Kind)}
	}
	return nil
}

// encodeForStorage serializes obj without its resourceVersion (etcd's
// mod revision is the resourceVersion).
func encodeForStorage(obj runtime.Object, gvk schema.GroupVersionKind) ([]byte, error) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	rv := acc.GetResourceVersion()
	acc.SetResourceVersion("")
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	data, err := json.Marshal(obj)
	acc.SetResourceVersion(rv)
	return data, err
}

// decodeFromStorage is the inverse of encodeForStorage.
func decodeFromStorage(scheme *runtime.Scheme, gvk schema.GroupVersionKind, data []byte, rev int64) (runtime.Object, error) {
	obj, err := scheme.New(gvk)
	if err != nil {
		return nil, err
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(data, obj); err != nil {
		return nil, fmt.Errorf("stored %s is corrupt: %w", gvk.Kind, err)
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	if err := setRV(obj, rev); err != nil {
		return nil, err
	}
	return obj, nil
}
