package apiserver

import (
	"net/http"

	"github.com/hoist-project/hoist/master/apiserver/auth/user"
	"github.com/hoist-project/hoist/master/apiserver/request"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// selfSubjectReviews is the resource kubectl auth whoami creates.
var selfSubjectReviews = authenticationv1.SchemeGroupVersion.WithResource("selfsubjectreviews")

// serveSelfSubjectReview answers who the caller is, as the authentication
// filter decided (anonymous when it did not run: the insecure port).
func (s *Server) serveSelfSubjectReview(w http.ResponseWriter, r *http.Request, info request.Info) {
	if info.Verb != "create" {
		writeError(w, r, apierrors.NewMethodNotSupported(selfSubjectReviews.GroupResource(), info.Verb))
		return
	}
	u, ok := user.From(r.Context())
	if !ok {
		u = user.AnonymousInfo()
	}
	writeObject(w, r, http.StatusCreated, &authenticationv1.SelfSubjectReview{
		TypeMeta:   metav1.TypeMeta{APIVersion: authenticationv1.SchemeGroupVersion.String(), Kind: "SelfSubjectReview"},
		ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.Now()},
		Status: authenticationv1.SelfSubjectReviewStatus{UserInfo: authenticationv1.UserInfo{
			Username: u.Name, UID: u.UID, Groups: u.Groups}},
	})
}
