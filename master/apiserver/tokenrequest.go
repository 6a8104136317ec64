package apiserver

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/hoist-project/hoist/master/apiserver/auth/authn"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// TokenRequest expiry bounds, as upstream.
const (
	defaultTokenSeconds = 3600
	minTokenSeconds     = 600
)

var tokenRequestKind = authenticationv1.SchemeGroupVersion.WithKind("TokenRequest")

// createToken serves serviceaccounts/{name}/token: it signs a token for the
// service account, optionally bound to a pod.
func (h *handler) createToken() error {
	if h.s.cfg.Tokens == nil {
		return apierrors.NewMethodNotSupported(corev1.Resource("serviceaccounts/token"), "create")
	}
	body, err := h.readBody()
	if err != nil {
		return err
	}
	var tr authenticationv1.TokenRequest
	if err := json.Unmarshal(body, &tr); err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("invalid TokenRequest: %v", err))
	}
	if tr.Spec.ExpirationSeconds == nil {
		secs := int64(defaultTokenSeconds)
		tr.Spec.ExpirationSeconds = &secs
	}
	if len(tr.Spec.Audiences) == 0 {
		tr.Spec.Audiences = h.s.cfg.Tokens.Audiences
	}
	if errs := validateTokenRequest(&tr); len(errs) > 0 {
		return apierrors.NewInvalid(tokenRequestKind.GroupKind(), h.info.Name, errs)
	}
	obj, err := h.st.Get(h.ctx(), h.ns, h.info.Name)
	if err != nil {
		return err
	}
	sa := obj.(*corev1.ServiceAccount)
	spec := authn.TokenSpec{Namespace: h.ns, ServiceAccount: authn.ObjectRef{Name: sa.Name, UID: string(sa.UID)},
		Audiences: tr.Spec.Audiences, TTL: time.Duration(*tr.Spec.ExpirationSeconds) * time.Second}
	if ref := tr.Spec.BoundObjectRef; ref != nil {
		if spec.Pod, err = h.boundPod(ref); err != nil {
			return err
		}
	}
	if h.dryRun() {
		return h.respondPlain(http.StatusCreated, tokenResponse(&tr, sa, "", time.Now().Add(spec.TTL)))
	}
	token, exp, err := h.s.cfg.Tokens.Issue(spec)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	return h.respondPlain(http.StatusCreated, tokenResponse(&tr, sa, token, exp))
}

func validateTokenRequest(tr *authenticationv1.TokenRequest) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("spec", "expirationSeconds")
	switch secs := *tr.Spec.ExpirationSeconds; {
	case secs < minTokenSeconds:
		errs = append(errs, field.Invalid(p, secs, "may not specify a duration less than 10 minutes"))
	case secs > math.MaxUint32:
		errs = append(errs, field.TooLong(p, secs, math.MaxUint32))
	}
	if ref := tr.Spec.BoundObjectRef; ref != nil {
		bp := field.NewPath("spec", "boundObjectRef")
		if ref.Kind != "Pod" {
			errs = append(errs, field.NotSupported(bp.Child("kind"), ref.Kind, []string{"Pod"}))
		}
		if ref.APIVersion != "" && ref.APIVersion != "v1" {
			errs = append(errs, field.NotSupported(bp.Child("apiVersion"), ref.APIVersion, []string{"v1"}))
		}
		if ref.Name == "" {
			errs = append(errs, field.Required(bp.Child("name"), ""))
		}
	}
	return errs
}

// boundPod resolves a pod reference; a uid that is given must match.
func (h *handler) boundPod(ref *authenticationv1.BoundObjectReference) (*authn.ObjectRef, error) {
	pods := h.s.stores[corev1.SchemeGroupVersion.WithResource("pods")]
	obj, err := pods.Get(h.ctx(), h.ns, ref.Name)
	if err != nil {
		return nil, err
	}
	pod := obj.(*corev1.Pod)
	if ref.UID != "" && ref.UID != pod.UID {
		return nil, apierrors.NewConflict(corev1.Resource("pods"), ref.Name,
			fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record (%s); the object might have been deleted and then recreated", ref.UID, pod.UID))
	}
	ref.UID = pod.UID
	return &authn.ObjectRef{Name: pod.Name, UID: string(pod.UID)}, nil
}

func tokenResponse(tr *authenticationv1.TokenRequest, sa *corev1.ServiceAccount, token string, exp time.Time) *authenticationv1.TokenRequest {
	return &authenticationv1.TokenRequest{
		TypeMeta:   metav1.TypeMeta{APIVersion: tokenRequestKind.GroupVersion().String(), Kind: tokenRequestKind.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: sa.Name, Namespace: sa.Namespace, CreationTimestamp: metav1.Now()},
		Spec:       tr.Spec,
		Status:     authenticationv1.TokenRequestStatus{Token: token, ExpirationTimestamp: metav1.NewTime(exp)},
	}
}
