package runtime

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"
	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// specFor builds containerd's default spec with a rootfs whose /etc/passwd
// lists uid 1000 (group 1001), then applies the pod's security options.
func specFor(t *testing.T, pod *v1.Pod) (*oci.Spec, error) {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "hst-test")
	ctr := &containers.Container{ID: "c"}
	s, err := oci.GenerateSpec(ctx, nil, ctr)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/:/bin/sh\napp:x:1000:1001::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Root.Path = root
	opts, err := securityOpts(pod, &pod.Spec.Containers[0])
	if err != nil {
		return nil, err
	}
	return s, oci.ApplyOpts(ctx, nil, ctr, s, opts...)
}

func securePod(psc *v1.PodSecurityContext, sc *v1.SecurityContext) *v1.Pod {
	return &v1.Pod{Spec: v1.PodSpec{SecurityContext: psc, Containers: []v1.Container{{Name: "c", SecurityContext: sc}}}}
}

func mustSpec(t *testing.T, pod *v1.Pod) *oci.Spec {
	t.Helper()
	s, err := specFor(t, pod)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSecurityUserAndGroups(t *testing.T) {
	s := mustSpec(t, securePod(
		&v1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](2000), SupplementalGroups: []int64{3000, 3001}},
		&v1.SecurityContext{RunAsUser: ptr.To[int64](1234)}))
	u := s.Process.User
	if u.UID != 1234 || u.GID != 2000 || !slices.Equal(u.AdditionalGids, []uint32{2000, 3000, 3001}) {
		t.Errorf("user %+v; want uid 1234 (container over pod), gid 2000, groups 2000 3000 3001", u)
	}
	// runAsUser alone takes the group from the image's /etc/passwd.
	s = mustSpec(t, securePod(&v1.PodSecurityContext{RunAsUser: ptr.To[int64](1000)}, nil))
	if s.Process.User.UID != 1000 || s.Process.User.GID != 1001 {
		t.Errorf("user %+v; want 1000:1001 from /etc/passwd", s.Process.User)
	}
	s = mustSpec(t, securePod(nil, &v1.SecurityContext{RunAsGroup: ptr.To[int64](77)}))
	if s.Process.User.UID != 0 || s.Process.User.GID != 77 {
		t.Errorf("user %+v; want 0:77", s.Process.User)
	}
	s = mustSpec(t, securePod(nil, nil))
	if s.Process.User.UID != 0 || s.Process.User.GID != 0 || s.Process.NoNewPrivileges || s.Root.Readonly {
		t.Errorf("no securityContext changed the default spec: user %+v, noNewPrivileges %v, readonly %v", s.Process.User, s.Process.NoNewPrivileges, s.Root.Readonly)
	}
}

func TestSecurityCapabilities(t *testing.T) {
	caps := func(add, drop []v1.Capability) []string {
		t.Helper()
		s := mustSpec(t, securePod(nil, &v1.SecurityContext{Capabilities: &v1.Capabilities{Add: add, Drop: drop}}))
		c := s.Process.Capabilities
		if !slices.Equal(c.Bounding, c.Effective) || !slices.Equal(c.Bounding, c.Permitted) {
			t.Errorf("bounding %v, effective %v, permitted %v differ", c.Bounding, c.Effective, c.Permitted)
		}
		return c.Bounding
	}
	got := caps([]v1.Capability{"NET_ADMIN", "CAP_SYS_TIME"}, []v1.Capability{"chown"})
	if !slices.Contains(got, "CAP_NET_ADMIN") || !slices.Contains(got, "CAP_SYS_TIME") || slices.Contains(got, "CAP_CHOWN") || !slices.Contains(got, "CAP_KILL") {
		t.Errorf("add NET_ADMIN, CAP_SYS_TIME, drop chown: %v", got)
	}
	got = caps([]v1.Capability{"ALL"}, []v1.Capability{"KILL"})
	if !slices.Contains(got, "CAP_SYS_ADMIN") || slices.Contains(got, "CAP_KILL") {
		t.Errorf("add ALL, drop KILL: %v", got)
	}
	got = caps([]v1.Capability{"NET_BIND_SERVICE"}, []v1.Capability{"ALL"})
	if !slices.Equal(got, []string{"CAP_NET_BIND_SERVICE"}) {
		t.Errorf("drop ALL, add NET_BIND_SERVICE: %v", got)
	}
	_, err := specFor(t, securePod(nil, &v1.SecurityContext{Capabilities: &v1.Capabilities{Add: []v1.Capability{"FLY"}}}))
	if err == nil || !strings.Contains(err.Error(), `unknown capability "FLY"`) {
		t.Errorf("unknown capability: err %v", err)
	}
}

func TestSecurityPrivilegedAndRestrictions(t *testing.T) {
	s := mustSpec(t, securePod(nil, &v1.SecurityContext{
		Privileged:   ptr.To(true),
		Capabilities: &v1.Capabilities{Drop: []v1.Capability{"ALL"}}, // ignored when privileged
	}))
	if len(s.Linux.MaskedPaths) != 0 || len(s.Linux.ReadonlyPaths) != 0 || s.Linux.Seccomp != nil {
		t.Errorf("privileged keeps masked %v / read-only %v paths or seccomp %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths, s.Linux.Seccomp)
	}
	if !slices.Contains(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN") {
		t.Errorf("privileged capabilities %v lack CAP_SYS_ADMIN", s.Process.Capabilities.Bounding)
	}
	allowed := false
	for _, d := range s.Linux.Resources.Devices {
		allowed = allowed || (d.Allow && d.Type == "" && d.Major == nil && d.Minor == nil)
	}
	if !allowed || len(s.Linux.Devices) == 0 {
		t.Errorf("privileged devices: rules %+v, %d host devices", s.Linux.Resources.Devices, len(s.Linux.Devices))
	}
	for _, m := range s.Mounts {
		if m.Destination == "/sys" && slices.Contains(m.Options, "ro") {
			t.Errorf("privileged /sys is read-only: %v", m.Options)
		}
	}
	s = mustSpec(t, securePod(nil, &v1.SecurityContext{ReadOnlyRootFilesystem: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false)}))
	if !s.Root.Readonly || !s.Process.NoNewPrivileges {
		t.Errorf("readonly root %v, noNewPrivileges %v; want both", s.Root.Readonly, s.Process.NoNewPrivileges)
	}
	if len(s.Linux.MaskedPaths) == 0 {
		t.Error("an unprivileged container lost its masked paths")
	}
}
