//go:build tools

// Package deps pins the module versions ARCHITECTURE §3 chose, so that every
// component builds against one known-good set even before it imports them.
package deps

import (
	_ "github.com/cilium/ebpf"
	_ "github.com/containerd/containerd"
	_ "github.com/containerd/containerd/oci"
	_ "github.com/containernetworking/cni/libcni"
	_ "github.com/containernetworking/cni/pkg/skel"
	_ "github.com/containernetworking/cni/pkg/types/100"
	_ "github.com/google/cadvisor/manager"
	_ "github.com/google/go-containerregistry/pkg/v1/layout"
	_ "github.com/opencontainers/runtime-spec/specs-go"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/vishvananda/netlink"
	_ "github.com/vishvananda/netns"
	_ "go.etcd.io/etcd/client/v3"
	_ "go.etcd.io/etcd/server/v3/embed"
	_ "k8s.io/api/core/v1"
	_ "k8s.io/apimachinery/pkg/util/strategicpatch"
	_ "k8s.io/client-go/informers"
	_ "k8s.io/client-go/tools/leaderelection"
)
