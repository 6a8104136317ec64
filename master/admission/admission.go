// Package admission holds the master's built-in admission: namespace
// lifecycle (no writes into missing or terminating namespaces, system
// namespaces cannot be deleted) and service ClusterIP/NodePort allocation.
package admission

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/hoist-project/hoist/master/allocator"
	"github.com/hoist-project/hoist/master/apiserver"
	"github.com/hoist-project/hoist/master/registry"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// SystemNamespaces always exist and cannot be deleted.
var SystemNamespaces = []string{"default", "kube-system", "kube-public", "kube-node-lease"}

// Chain is the master's admission.
type Chain struct {
	// Namespaces reads namespace objects.
	Namespaces *registry.Store
	ServiceIPs *allocator.Allocator
	NodePorts  *allocator.Allocator
}

var _ apiserver.Admission = (*Chain)(nil)

// Admit implements apiserver.Admission.
func (c *Chain) Admit(ctx context.Context, a apiserver.Attributes) error {
	if err := c.namespaceLifecycle(ctx, a); err != nil {
		return err
	}
	if a.Resource.Kind == "Service" && a.Op != apiserver.Delete && a.Subresource == "" {
		return c.allocateService(ctx, a.Obj.(*corev1.Service), a.Old)
	}
	return nil
}

func (c *Chain) namespaceLifecycle(ctx context.Context, a apiserver.Attributes) error {
	if a.Resource.Kind == "Namespace" {
		if a.Op == apiserver.Delete {
			for _, n := range SystemNamespaces {
				if n == a.Name {
					return apierrors.NewForbidden(corev1.Resource("namespaces"), a.Name, errors.New("this namespace may not be deleted"))
				}
			}
		}
		return nil
	}
	if a.Op != apiserver.Create || !a.Resource.Namespaced {
		return nil
	}
	// An active namespace in the watch cache is enough, as upstream's
	// lister; a miss or a terminating one is checked against etcd.
	if obj, ok := c.Namespaces.CachedGet("", a.Namespace); ok && active(obj.(*corev1.Namespace)) {
		return nil
	}
	obj, err := c.Namespaces.Get(ctx, "", a.Namespace)
	if apierrors.IsNotFound(err) {
		return apierrors.NewNotFound(corev1.Resource("namespaces"), a.Namespace)
	}
	if err != nil {
		return err
	}
	if !active(obj.(*corev1.Namespace)) {
		gr := a.Resource.GroupVersionResource().GroupResource()
		return apierrors.NewForbidden(gr, a.Name, fmt.Errorf("unable to create new content in namespace %s because it is being terminated", a.Namespace))
	}
	return nil
}

func active(ns *corev1.Namespace) bool {
	return ns.DeletionTimestamp == nil && ns.Status.Phase != corev1.NamespaceTerminating
}

// owner identifies a service in the allocators: its uid, which the
// apiserver fixes before admission.
func owner(s *corev1.Service) string { return string(s.UID) }

func (c *Chain) allocateService(ctx context.Context, s *corev1.Service, old runtime.Object) error {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if old != nil {
		os := old.(*corev1.Service)
		registry.CarryServiceAllocations(s, os)
		if os.Spec.ClusterIP != "" && s.Spec.ClusterIP != os.Spec.ClusterIP && s.Spec.Type != corev1.ServiceTypeExternalName {
			errs = append(errs, field.Invalid(spec.Child("clusterIP"), s.Spec.ClusterIP, "field is immutable"))
			return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), s.Name, errs)
		}
	}
	if s.Spec.Type != corev1.ServiceTypeExternalName && s.Spec.ClusterIP != corev1.ClusterIPNone {
		if s.Spec.ClusterIP == "" {
			ip, err := c.ServiceIPs.Allocate(ctx, owner(s))
			if err != nil {
				return apierrors.NewInternalError(fmt.Errorf("failed to allocate a serviceIP: %w", err))
			}
			s.Spec.ClusterIP = ip
		} else if err := c.ServiceIPs.Claim(ctx, s.Spec.ClusterIP, owner(s)); err != nil {
			errs = append(errs, allocErr(spec.Child("clusterIP"), s.Spec.ClusterIP, err))
		}
		s.Spec.ClusterIPs = []string{s.Spec.ClusterIP}
	} else if s.Spec.ClusterIP == corev1.ClusterIPNone {
		s.Spec.ClusterIPs = []string{corev1.ClusterIPNone}
	}
	if s.Spec.Type == corev1.ServiceTypeNodePort || s.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for i := range s.Spec.Ports {
			p := &s.Spec.Ports[i]
			if p.NodePort == 0 {
				v, err := c.NodePorts.Allocate(ctx, owner(s))
				if err != nil {
					return apierrors.NewInternalError(fmt.Errorf("failed to allocate a nodePort: %w", err))
				}
				n, _ := strconv.Atoi(v)
				p.NodePort = int32(n)
			} else if err := c.NodePorts.Claim(ctx, strconv.Itoa(int(p.NodePort)), owner(s)); err != nil {
				errs = append(errs, allocErr(spec.Child("ports").Index(i).Child("nodePort"), p.NodePort, err))
			}
		}
	} else {
		for i := range s.Spec.Ports {
			s.Spec.Ports[i].NodePort = 0
		}
	}
	if len(errs) > 0 {
		c.Release(ctx, nil, s, old)
		return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), s.Name, errs)
	}
	return nil
}

func allocErr(p *field.Path, v any, err error) *field.Error {
	switch {
	case errors.Is(err, allocator.ErrAllocated):
		return field.Invalid(p, v, "provided "+p.String()+" is already allocated")
	case errors.Is(err, allocator.ErrOutOfRange):
		return field.Invalid(p, v, err.Error())
	}
	return field.InternalError(p, err)
}

// Release implements apiserver.Admission: it frees the ClusterIP and
// NodePorts of obj that kept (the object that remains stored, or nil) does
// not use.
func (c *Chain) Release(ctx context.Context, _ *registry.Resource, obj, kept runtime.Object) {
	s, ok := obj.(*corev1.Service)
	if !ok {
		return
	}
	var k *corev1.Service
	if kept != nil {
		k = kept.(*corev1.Service)
	}
	keepIP := k != nil && k.Spec.ClusterIP == s.Spec.ClusterIP && k.UID == s.UID
	if s.Spec.ClusterIP != "" && s.Spec.ClusterIP != corev1.ClusterIPNone && !keepIP {
		if err := c.ServiceIPs.Release(ctx, s.Spec.ClusterIP, owner(s)); err != nil {
			slog.Warn("releasing service IP", "ip", s.Spec.ClusterIP, "err", err)
		}
	}
	for _, p := range s.Spec.Ports {
		if p.NodePort == 0 || (k != nil && k.UID == s.UID && usesNodePort(k, p.NodePort)) {
			continue
		}
		if err := c.NodePorts.Release(ctx, strconv.Itoa(int(p.NodePort)), owner(s)); err != nil {
			slog.Warn("releasing node port", "port", p.NodePort, "err", err)
		}
	}
}

func usesNodePort(s *corev1.Service, port int32) bool {
	for _, p := range s.Spec.Ports {
		if p.NodePort == port {
			return true
		}
	}
	return false
}
