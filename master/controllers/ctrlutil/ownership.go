package ctrlutil

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// Claim is what an owner should do with a candidate child.
type Claim int

// Claim outcomes.
const (
	Ignore  Claim = iota // not ours and not adoptable
	Owned                // ours and still matching
	Adopt                // orphan matching the selector
	Release              // ours but no longer matching
)

// Decide applies upstream's ControllerRefManager rules to one child.
func Decide(child metav1.Object, ownerUID types.UID, sel labels.Selector, ownerDeleting bool) Claim {
	ref := metav1.GetControllerOfNoCopy(child)
	matches := sel.Matches(labels.Set(child.GetLabels()))
	switch {
	case ref != nil && ref.UID == ownerUID && matches:
		return Owned
	case ref != nil && ref.UID == ownerUID:
		if ownerDeleting || child.GetDeletionTimestamp() != nil {
			return Owned
		}
		return Release
	case ref == nil && matches && !ownerDeleting && child.GetDeletionTimestamp() == nil:
		return Adopt
	}
	return Ignore
}

// ControllerRef is the owner reference a controller puts on its children.
func ControllerRef(owner metav1.Object, gvk schema.GroupVersionKind) metav1.OwnerReference {
	t := true
	return metav1.OwnerReference{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind,
		Name: owner.GetName(), UID: owner.GetUID(), Controller: &t, BlockOwnerDeletion: &t}
}

// AdoptPatch is the strategic merge patch that adds owner's controller
// reference to child (guarded by the child's UID).
func AdoptPatch(owner metav1.Object, gvk schema.GroupVersionKind, child types.UID) []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences": []metav1.OwnerReference{ControllerRef(owner, gvk)}, "uid": child}})
	return b
}

// ReleasePatch removes the owner reference with ownerUID from child.
func ReleasePatch(ownerUID, child types.UID) []byte {
	return []byte(fmt.Sprintf(`{"metadata":{"ownerReferences":[{"$patch":"delete","uid":%q}],"uid":%q}}`, ownerUID, child))
}

// SlowStart calls fn count times in batches of 1, 2, 4, ... concurrently,
// stopping after the first batch with an error (upstream's slowStartBatch:
// a failing quota or admission rejects one call, not a thousand). It
// returns how many calls succeeded and the first error.
func SlowStart(ctx context.Context, count int, fn func(ctx context.Context) error) (int, error) {
	done := 0
	for batch := 1; done < count; batch *= 2 {
		if batch > count-done {
			batch = count - done
		}
		var wg sync.WaitGroup
		errs := make(chan error, batch)
		for i := 0; i < batch; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := fn(ctx); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		failed := len(errs)
		done += batch - failed
		if failed > 0 {
			return done, <-errs
		}
	}
	return done, nil
}

// MergePatch encodes v as a JSON merge patch body. Controllers patch
// instead of updating cached copies, so a stale cache can never overwrite
// a field someone else just changed.
func MergePatch(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("merge patch of %T: %v", v, err)) // only plain maps and API types are passed
	}
	return b
}

// ClaimChildren applies Decide to each of an owner's candidate children: it
// adopts matching orphans and releases owned children that stopped
// matching by sending patch (a strategic merge patch for child) and
// returns the children the owner now owns. A child deleted meanwhile is
// skipped; any other patch error stops the claim.
func ClaimChildren[T metav1.Object](owner metav1.Object, gvk schema.GroupVersionKind, sel labels.Selector, ownerDeleting bool,
	children []T, patch func(child T, body []byte) error) ([]T, error) {
	var owned []T
	for _, child := range children {
		var body []byte
		switch Decide(child, owner.GetUID(), sel, ownerDeleting) {
		case Owned:
			owned = append(owned, child)
			continue
		case Adopt:
			body = AdoptPatch(owner, gvk, child.GetUID())
		case Release:
			body = ReleasePatch(owner.GetUID(), child.GetUID())
		default:
			continue
		}
		err := patch(child, body)
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
		if err == nil && sel.Matches(labels.Set(child.GetLabels())) {
			owned = append(owned, child) // adopted
		}
	}
	return owned, nil
}
