package kubelet

import (
	"context"
	"strings"
	"testing"

	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/kubelet/runtime"
	"github.com/hoist-project/hoist/packaging/images"
)

// TestIntegrationPauseImagePulled gives the kubelet a pause image that is
// neither in the air-gap directory nor in containerd, only in a registry
// (Debian's docker-registry on loopback): the kubelet pulls it through the
// image manager's pull path, and the pod's sandbox runs on it.
func TestIntegrationPauseImagePulled(t *testing.T) {
	testenv.RequireCommand(t, "docker-registry", "docker-registry")
	s := newSuite(t)
	ctx := context.Background()
	reg, err := images.StartRegistry(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	if _, err := reg.Push(ctx, s.imageDir); err != nil {
		t.Fatal(err)
	}
	n := s.newNode(t, 24)
	n.cfg.PauseImage = reg.Addr() + "/" + images.PauseImage // the air-gap copy has another name
	n.start()
	n.write("web.yaml", podYAML("web", `  containers:
  - name: c
    image: `+images.TestboxImage+`
    args: [sleep]
`))
	n.waitRunning("web")
	if !strings.Contains(n.logs.String(), `msg="pulling the sandbox image" node=`+n.name+` image=`+n.cfg.PauseImage) {
		t.Fatalf("the kubelet did not say it pulled %s", n.cfg.PauseImage)
	}
	ctrs, err := s.ctrd.Client().Containers(n.ctx())
	if err != nil {
		t.Fatal(err)
	}
	sandboxes := 0
	for _, c := range ctrs {
		info, err := c.Info(n.ctx())
		if err != nil {
			t.Fatal(err)
		}
		if info.Labels[runtime.LabelKind] == string(runtime.KindSandbox) {
			sandboxes++
			if info.Image != n.cfg.PauseImage {
				t.Fatalf("sandbox %s runs image %s, want the pulled %s", c.ID(), info.Image, n.cfg.PauseImage)
			}
		}
	}
	if sandboxes != 1 {
		t.Fatalf("%d sandboxes, want 1", sandboxes)
	}
}
