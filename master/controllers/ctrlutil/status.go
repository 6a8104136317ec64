package ctrlutil

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// StatusPatcher is the Patch method every typed client
// (client.AppsV1().Deployments(ns), ...) has.
type StatusPatcher[T any] interface {
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error)
}

// PatchStatus merge-patches the status subresource of object name with
// status, whose fields must all be spelled out: omitempty would drop zeros
// from a merge patch and leave stale counts behind. An object deleted
// meanwhile is not an error.
func PatchStatus[T any](ctx context.Context, p StatusPatcher[T], name string, status map[string]any) error {
	patch := MergePatch(map[string]any{"status": status})
	if _, err := p.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update status: %w", err)
	}
	return nil
}
