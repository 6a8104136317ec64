package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hoist-project/hoist/master/registry"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// applyPatch applies a patch of the given content type to original (JSON)
// for objects of type dataStruct.
func applyPatch(contentType string, original, patch []byte, dataStruct any) ([]byte, error) {
	mt := strings.TrimSpace(strings.Split(contentType, ";")[0])
	switch mt {
	case "application/json-patch+json":
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid JSON patch: %v", err))
		}
		out, err := p.Apply(original)
		if err != nil {
			return nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "patch", schema.GroupResource{}, "", err.Error(), 0, false)
		}
		return out, nil
	case "application/merge-patch+json":
		out, err := jsonpatch.MergePatch(original, patch)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid merge patch: %v", err))
		}
		return out, nil
	case "application/strategic-merge-patch+json":
		out, err := strategicpatch.StrategicMergePatch(original, patch, dataStruct)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid strategic merge patch: %v", err))
		}
		return out, nil
	case "application/apply-patch+yaml", "application/apply-patch+cbor":
		return nil, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", schema.GroupResource{}, "",
			"server-side apply is not supported by hoist; use client-side apply (kubectl apply without --server-side)", 0, false)
	}
	return nil, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", schema.GroupResource{}, "",
		fmt.Sprintf("unsupported patch type %q: use application/json-patch+json, application/merge-patch+json or application/strategic-merge-patch+json", mt), 0, false)
}

func (h *handler) patch() error {
	body, err := h.readPatchBody()
	if err != nil {
		return err
	}
	ct := h.r.Header.Get("Content-Type")
	if h.info.Subresource == "scale" {
		return h.scaleUpdate("", func(cur *autoscalingv1.Scale) (*autoscalingv1.Scale, error) {
			orig, err := scaleJSON(cur)
			if err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			patched, err := applyPatch(ct, orig, body, &autoscalingv1.Scale{})
			if err != nil {
				return nil, err
			}
			obj, err := h.decode(autoscalingv1.SchemeGroupVersion.WithKind("Scale"), patched)
			if err != nil {
				return nil, err
			}
			sc := obj.(*autoscalingv1.Scale)
			if err := patchPreconditions(h.st.Res, cur, sc); err != nil {
				return nil, err
			}
			return sc, nil
		})
	}
	gvk := h.st.Res.GroupVersionKind()
	return h.admittedUpdate("", func(old runtime.Object) (runtime.Object, error) {
		orig, err := json.Marshal(old)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		empty, _ := h.s.cfg.Scheme.New(gvk)
		patched, err := applyPatch(ct, orig, body, empty)
		if err != nil {
			return nil, err
		}
		obj, err := h.decode(gvk, patched)
		if err != nil {
			return nil, err
		}
		oldAcc, _ := meta.Accessor(old)
		acc, err := meta.Accessor(obj)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		if err := patchPreconditions(h.st.Res, oldAcc, acc); err != nil {
			return nil, err
		}
		return obj, nil
	})
}

// patchPreconditions applies upstream's rules for the metadata a patch
// leaves in the object. A resourceVersion other than the current one
// (whichever patch type set it) is an optimistic-concurrency precondition
// that failed: 409, so a client can patch "only if unchanged since I read
// it". A different uid is an attempt to change an immutable field: 422.
// Both are checked against the object the patch was applied to, on every
// retry, so a concurrent write between read and write is caught too.
func patchPreconditions(res *registry.Resource, cur, patched metav1.Object) error {
	if rv := patched.GetResourceVersion(); rv != "" && rv != cur.GetResourceVersion() {
		return apierrors.NewConflict(res.GroupVersionResource().GroupResource(), cur.GetName(), errors.New(registry.OptimisticLockMsg))
	}
	if uid := patched.GetUID(); uid != "" && uid != cur.GetUID() {
		return apierrors.NewInvalid(res.GroupVersionKind().GroupKind(), cur.GetName(), field.ErrorList{
			field.Invalid(field.NewPath("metadata", "uid"), uid, "field is immutable")})
	}
	return nil
}

func (h *handler) readPatchBody() ([]byte, error) {
	b, err := h.readBodyRaw()
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, apierrors.NewBadRequest("the patch body is empty")
	}
	return b, nil
}
