package authz

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/hoist-project/hoist/master/apiserver/auth/user"
)

// NodeLeaseNamespace holds the kubelets' heartbeat Leases.
const NodeLeaseNamespace = "kube-node-lease"

// PodNodeNamer looks up which node a pod is bound to (its spec.nodeName);
// the API server implements it over storage. For a missing pod it returns an
// error satisfying apierrors.IsNotFound; any other error means the lookup
// itself failed.
type PodNodeNamer interface {
	PodNodeName(ctx context.Context, namespace, name string) (string, error)
}

// Node authorizes kubelets: users named system:node:<name> in the group
// system:nodes. A node may
//   - read (get/list/watch) what a kubelet needs: nodes, pods, services,
//     endpoints, endpointslices, configmaps, secrets, persistentvolumeclaims,
//     persistentvolumes, runtimeclasses;
//   - create, update, patch and delete its own Node (and nodes/status);
//   - get, create, update, patch and delete its own Lease in kube-node-lease;
//   - create, update and patch events;
//   - create mirror pods bound to itself, and update pods/status of or delete
//     pods bound to itself.
//
// Everything else gets NoOpinion with a reason (a Union then denies).
// Unlike upstream, reads of secrets/configmaps/PVs are not restricted to
// those referenced by the node's pods (see docs/security.md).
type Node struct {
	Pods PodNodeNamer
}

type groupResource struct{ group, resource string }

func nodeReadable(gr groupResource) bool {
	switch gr {
	case groupResource{"", "nodes"}, groupResource{"", "pods"}, groupResource{"", "services"},
		groupResource{"", "endpoints"}, groupResource{"discovery.k8s.io", "endpointslices"},
		groupResource{"", "configmaps"}, groupResource{"", "secrets"},
		groupResource{"", "persistentvolumeclaims"}, groupResource{"", "persistentvolumes"},
		groupResource{"node.k8s.io", "runtimeclasses"}:
		return true
	}
	return false
}

func isReadVerb(v string) bool { return v == "get" || v == "list" || v == "watch" }

func oneOf(v string, verbs ...string) bool {
	for _, x := range verbs {
		if v == x {
			return true
		}
	}
	return false
}

// NodeName returns the node a user is the kubelet of, if any.
func NodeName(u user.Info) (string, bool) {
	name, ok := strings.CutPrefix(u.Name, user.NodeUserPrefix)
	if !ok || name == "" || !u.InGroup(user.NodesGroup) {
		return "", false
	}
	return name, true
}

func (n Node) Authorize(ctx context.Context, a Attributes) (Decision, string, error) {
	node, ok := NodeName(a.User)
	if !ok {
		return NoOpinion, "", nil
	}
	if !a.IsResourceRequest {
		return NoOpinion, "", nil
	}
	gr := groupResource{a.APIGroup, a.Resource}
	if a.Subresource == "" && isReadVerb(a.Verb) && nodeReadable(gr) {
		return Allow, "", nil
	}
	switch gr {
	case groupResource{"", "nodes"}:
		return ownObject(a, node, "node", a.Subresource == "" || a.Subresource == "status",
			"create", "update", "patch", "delete")
	case groupResource{"coordination.k8s.io", "leases"}:
		if a.Namespace != NodeLeaseNamespace {
			return NoOpinion, fmt.Sprintf("node %q may only touch its own lease in namespace %q", node, NodeLeaseNamespace), nil
		}
		return ownObject(a, node, "lease", a.Subresource == "",
			"get", "create", "update", "patch", "delete")
	case groupResource{"", "events"}, groupResource{"events.k8s.io", "events"}:
		if a.Subresource == "" && oneOf(a.Verb, "create", "update", "patch") {
			return Allow, "", nil
		}
	case groupResource{"", "pods"}:
		return n.authorizePod(ctx, a, node)
	}
	return NoOpinion, fmt.Sprintf("node %q may not %s %s", node, a.Verb, resourceString(a)), nil
}

// ownObject allows verbs on the object named like the node itself.
func ownObject(a Attributes, node, kind string, subresourceOK bool, verbs ...string) (Decision, string, error) {
	if !subresourceOK || !oneOf(a.Verb, verbs...) {
		return NoOpinion, fmt.Sprintf("node %q may not %s %s", node, a.Verb, resourceString(a)), nil
	}
	if a.Name != node {
		return NoOpinion, fmt.Sprintf("node %q may only %s its own %s, not %q", node, a.Verb, kind, a.Name), nil
	}
	return Allow, "", nil
}

func (n Node) authorizePod(ctx context.Context, a Attributes, node string) (Decision, string, error) {
	switch {
	case a.Verb == "create" && a.Subresource == "":
		// Mirror pods of the kubelet's static pods.
		if a.ObjectNodeName == node {
			return Allow, "", nil
		}
		return NoOpinion, fmt.Sprintf("node %q may only create pods bound to itself", node), nil
	case (a.Subresource == "status" && oneOf(a.Verb, "update", "patch")) || (a.Subresource == "" && a.Verb == "delete"):
		if a.Name == "" {
			return NoOpinion, fmt.Sprintf("node %q may not %s %s without a pod name", node, a.Verb, resourceString(a)), nil
		}
		if n.Pods == nil {
			return NoOpinion, "", fmt.Errorf("node authorizer has no pod lookup")
		}
		bound, err := n.Pods.PodNodeName(ctx, a.Namespace, a.Name)
		if apierrors.IsNotFound(err) {
			return NoOpinion, fmt.Sprintf("no relationship found between node %q and pod %s/%s", node, a.Namespace, a.Name), nil
		}
		if err != nil {
			return NoOpinion, "", fmt.Errorf("look up node of pod %s/%s: %w", a.Namespace, a.Name, err)
		}
		if bound != node {
			return NoOpinion, fmt.Sprintf("pod %s/%s is not bound to node %q", a.Namespace, a.Name, node), nil
		}
		return Allow, "", nil
	}
	return NoOpinion, fmt.Sprintf("node %q may not %s %s", node, a.Verb, resourceString(a)), nil
}

func resourceString(a Attributes) string {
	r := a.Resource
	if a.Subresource != "" {
		r += "/" + a.Subresource
	}
	if a.APIGroup != "" {
		r += "." + a.APIGroup
	}
	return r
}
