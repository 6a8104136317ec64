package runtime

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/containerd/pkg/cap"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"
)

// securityOpts turns a container's securityContext (whose user and group
// settings override the pod's) into OCI spec options, as upstream's kubelet
// and containerd's CRI plugin do. They must come after the image config.
func securityOpts(pod *v1.Pod, c *v1.Container) ([]oci.SpecOpts, error) {
	var opts []oci.SpecOpts
	uid, gid := runAsIDs(pod, c)
	if uid != nil {
		// The group comes from the image's /etc/passwd (0 if not listed).
		opts = append(opts, oci.WithUserID(uint32(*uid)))
	}
	var groups []int64
	if psc := pod.Spec.SecurityContext; psc != nil {
		groups = psc.SupplementalGroups
	}
	if gid != nil || len(groups) > 0 {
		opts = append(opts, withGroups(gid, groups))
	}
	sc := c.SecurityContext
	// containerd's default spec sets noNewPrivileges; Kubernetes only does
	// for allowPrivilegeEscalation: false (setuid binaries work otherwise).
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		opts = append(opts, oci.WithNewPrivileges)
	}
	if sc == nil {
		return opts, nil
	}
	if sc.Privileged != nil && *sc.Privileged {
		opts = append(opts, withPrivileged)
	} else if sc.Capabilities != nil {
		capOpt, err := withCapabilities(sc.Capabilities)
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", c.Name, err)
		}
		opts = append(opts, capOpt)
	}
	if sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		opts = append(opts, oci.WithNoNewPrivileges)
	}
	return opts, nil
}

// runAsIDs returns runAsUser and runAsGroup, container level over pod level.
func runAsIDs(pod *v1.Pod, c *v1.Container) (uid, gid *int64) {
	if psc := pod.Spec.SecurityContext; psc != nil {
		uid, gid = psc.RunAsUser, psc.RunAsGroup
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
	}
	return uid, gid
}

// withGroups sets the primary group (if gid is set) and adds the pod's
// supplementalGroups.
func withGroups(gid *int64, groups []int64) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		u := &s.Process.User
		if gid != nil {
			// The old primary group is also listed among the process's groups.
			for i, g := range u.AdditionalGids {
				if g == u.GID {
					u.AdditionalGids[i] = uint32(*gid)
				}
			}
			u.GID = uint32(*gid)
		}
		for _, g := range groups {
			if !slices.Contains(u.AdditionalGids, uint32(g)) {
				u.AdditionalGids = append(u.AdditionalGids, uint32(g))
			}
		}
		return nil
	}
}

// withCapabilities applies add/drop: "ALL" in add starts from every known
// capability, "ALL" in drop from none, then the named ones are added and
// dropped. Names may carry the CAP_ prefix or not.
func withCapabilities(c *v1.Capabilities) (oci.SpecOpts, error) {
	add, addAll, err := capNames(c.Add)
	if err != nil {
		return nil, err
	}
	drop, dropAll, err := capNames(c.Drop)
	if err != nil {
		return nil, err
	}
	var opts []oci.SpecOpts
	if addAll {
		opts = append(opts, oci.WithCapabilities(cap.Known()))
	}
	if dropAll {
		opts = append(opts, oci.WithCapabilities(nil))
	}
	opts = append(opts, oci.WithAddedCapabilities(add), oci.WithDroppedCapabilities(drop))
	return oci.Compose(opts...), nil
}

func capNames(names []v1.Capability) (caps []string, all bool, err error) {
	known := map[string]bool{}
	for _, k := range cap.Known() {
		known[k] = true
	}
	for _, n := range names {
		name := strings.ToUpper(string(n))
		if name == "ALL" {
			all = true
			continue
		}
		if !strings.HasPrefix(name, "CAP_") {
			name = "CAP_" + name
		}
		if !known[name] {
			return nil, false, fmt.Errorf("unknown capability %q", n)
		}
		caps = append(caps, name)
	}
	return caps, all, nil
}

// withPrivileged is upstream's privileged container: every capability the
// kubelet has, all host devices, no masked or read-only paths, writable
// sysfs and cgroupfs, no seccomp or AppArmor profile.
func withPrivileged(ctx context.Context, cl oci.Client, c *containers.Container, s *oci.Spec) error {
	caps, err := cap.Current()
	if err != nil {
		return fmt.Errorf("privileged: read capabilities: %w", err)
	}
	if err := oci.Compose(
		oci.WithCapabilities(caps), oci.WithMaskedPaths(nil), oci.WithReadonlyPaths(nil),
		oci.WithWriteableSysfs, oci.WithWriteableCgroupfs, oci.WithHostDevices, oci.WithAllDevicesAllowed,
	)(ctx, cl, c, s); err != nil {
		return err
	}
	if s.Linux != nil {
		s.Linux.Seccomp = nil
	}
	s.Process.ApparmorProfile = ""
	return nil
}
