package filters

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/hoist-project/hoist/master/apiserver/auth/authz"
)

// maxPeekBody bounds what the authorization filter buffers (upstream's
// default request body limit is 3 MiB).
const maxPeekBody = 3 << 20

// createTarget is the part of a created object the node authorizer checks.
type createTarget struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		NodeName string `json:"nodeName"`
	} `json:"spec"`
}

// fillFromBody sets a.Name (when the URL names no object) and
// a.ObjectNodeName from a JSON request body, then restores the body for
// the handler. A body that is not JSON leaves both empty, so the node
// authorizer denies rather than guesses.
func fillFromBody(r *http.Request, a *authz.Attributes) error {
	if r.Body == nil {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxPeekBody+1))
	r.Body.Close()
	if err != nil {
		return fmt.Errorf("read request body: %w", err)
	}
	if len(data) > maxPeekBody {
		return fmt.Errorf("request body larger than %d bytes", maxPeekBody)
	}
	r.Body = io.NopCloser(bytes.NewReader(data))
	var t createTarget
	if json.Unmarshal(data, &t) != nil {
		return nil
	}
	if a.Name == "" {
		a.Name = t.Metadata.Name
	}
	a.ObjectNodeName = t.Spec.NodeName
	return nil
}
