package registry

import (
	"bytes"
	"encoding/json"
	"strconv"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// rvPlaceholder stands in for the resourceVersion while a new object is
// encoded once for both etcd (without a resourceVersion) and the API
// response (with the revision of the write, known only after it). JSON
// escapes the NUL, so the field reads "resourceVersion":"\u0000rv".
const rvPlaceholder = "\x00rv"

var rvField = []byte(`"resourceVersion":"\u0000rv"`)

// encodedOnce is an object's JSON with the placeholder resourceVersion.
type encodedOnce struct {
	data []byte
	at   int // offset of rvField in data
}

// encodeOnce serializes obj with the placeholder resourceVersion, leaving
// obj's own unchanged. ok is false when the placeholder field is not
// found exactly once (a map in the object holding the same text): the
// caller then encodes the usual way.
func encodeOnce(obj runtime.Object, gvk schema.GroupVersionKind) (encodedOnce, bool, error) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return encodedOnce{}, false, err
	}
	rv := acc.GetResourceVersion()
	acc.SetResourceVersion(rvPlaceholder)
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	data, err := json.Marshal(obj)
	acc.SetResourceVersion(rv)
	if err != nil {
		return encodedOnce{}, false, err
	}
	at := bytes.Index(data, rvField)
	ok := at >= 0 && !bytes.Contains(data[at+len(rvField):], rvField)
	return encodedOnce{data, at}, ok, nil
}

// stored is the encoding without resourceVersion, as encodeForStorage
// writes it (an empty resourceVersion is omitted, with its comma).
func (e encodedOnce) stored() []byte {
	start, end := e.at, e.at+len(rvField)
	if end < len(e.data) && e.data[end] == ',' {
		end++
	} else if start > 0 && e.data[start-1] == ',' {
		start--
	}
	out := make([]byte, 0, len(e.data)-(end-start))
	return append(append(out, e.data[:start]...), e.data[end:]...)
}

// withRV is the encoding with resourceVersion rev, as json.Marshal writes
// the object once its resourceVersion is set.
func (e encodedOnce) withRV(rev int64) []byte {
	v := strconv.FormatInt(rev, 10)
	out := make([]byte, 0, len(e.data)+len(v))
	out = append(out, e.data[:e.at]...)
	out = append(out, `"resourceVersion":"`...)
	out = append(out, v...)
	out = append(out, '"')
	return append(out, e.data[e.at+len(rvField):]...)
}
