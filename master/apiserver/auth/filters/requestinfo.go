package filters

import (
	"net/http"

	"github.com/hoist-project/hoist/master/apiserver/auth/authz"
	"github.com/hoist-project/hoist/master/apiserver/auth/user"
	"github.com/hoist-project/hoist/master/apiserver/request"
)

// RequestAttributes is the AttributesFunc over the API server's request-info
// parser; pass it to Wrap.
func RequestAttributes(r *http.Request, u user.Info) (authz.Attributes, error) {
	info := request.Parse(r)
	return authz.Attributes{
		User:              u,
		Verb:              info.Verb,
		APIGroup:          info.APIGroup,
		APIVersion:        info.APIVersion,
		Resource:          info.Resource,
		Subresource:       info.Subresource,
		Namespace:         info.Namespace,
		Name:              info.Name,
		Path:              info.Path,
		IsResourceRequest: info.IsResourceRequest,
	}, nil
}
