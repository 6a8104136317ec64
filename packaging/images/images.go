// Package images builds hoist's own container images (hoist.test/pause and
// hoist.test/testbox) as OCI archive tarballs with deterministic digests, lists
// them, imports them into containerd, and pushes them to a local registry.
//
// There is no reachable public registry on hoist's machines: these images are
// what pods run in tests, reaching containerd from an air-gap directory of
// archives or from Debian's docker-registry on loopback.
package images

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image references hoist builds. The kubelet's default sandbox image is PauseImage.
const (
	PauseImage   = "hoist.test/pause:3.10"
	TestboxImage = "hoist.test/testbox:1.0"
)

// DefaultBusyboxPath is where Debian's busybox-static installs busybox.
const DefaultBusyboxPath = "/bin/busybox"

// epoch is the fixed timestamp of every file and config: builds are reproducible.
var epoch = time.Unix(0, 0).UTC()

// Image is one built image archive.
type Image struct {
	Ref    string // e.g. hoist.test/pause:3.10
	Digest string // manifest digest, sha256:...
	Path   string // the OCI archive holding it
}

// BuildOptions says where the inputs are and where the archives go.
type BuildOptions struct {
	OutDir      string // receives pause.tar and testbox.tar
	BinDir      string // holds the static pause and testbox binaries (`make build`)
	BusyboxPath string // default DefaultBusyboxPath
}

// Build writes one OCI archive per image into opts.OutDir. Building twice from
// the same inputs yields byte-identical archives.
func Build(ctx context.Context, opts BuildOptions) ([]Image, error) {
	if opts.BusyboxPath == "" {
		opts.BusyboxPath = DefaultBusyboxPath
	}
	if opts.OutDir == "" {
		return nil, errors.New("no output directory given")
	}
	pause, err := readStaticBinary(opts.BinDir, "pause")
	if err != nil {
		return nil, err
	}
	testbox, err := readStaticBinary(opts.BinDir, "testbox")
	if err != nil {
		return nil, err
	}
	if pause.arch != testbox.arch {
		return nil, fmt.Errorf("pause is built for %s but testbox for %s: build both for one architecture", pause.arch, testbox.arch)
	}

	pauseLayer := newLayerBuilder()
	pauseLayer.file("pause", 0o755, pause.data)

	testboxLayer, err := testboxRootfs(ctx, testbox, opts.BusyboxPath)
	if err != nil {
		return nil, err
	}

	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return nil, err
	}
	var built []Image
	for _, spec := range []struct {
		ref, file  string
		layer      *layerBuilder
		entrypoint []string
	}{
		{PauseImage, "pause.tar", pauseLayer, []string{"/pause"}},
		{TestboxImage, "testbox.tar", testboxLayer, []string{"/testbox"}},
	} {
		img, err := buildImage(spec.layer, spec.entrypoint, pause.arch)
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", spec.ref, err)
		}
		path := filepath.Join(opts.OutDir, spec.file)
		dgst, err := writeArchive(path, spec.ref, img)
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
		built = append(built, Image{Ref: spec.ref, Digest: dgst, Path: path})
	}
	return built, nil
}

// goarch names an ELF machine as OCI platforms (and GOARCH) do.
func goarch(f *elf.File) (string, bool) {
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", true
	case elf.EM_AARCH64:
		return "arm64", true
	case elf.EM_ARM:
		return "arm", true
	case elf.EM_386:
		return "386", true
	case elf.EM_PPC64:
		return "ppc64le", f.ByteOrder == binary.LittleEndian
	case elf.EM_S390:
		return "s390x", true
	case elf.EM_RISCV:
		return "riscv64", true
	}
	return "", false
}

// executable is a static program to put into an image.
type executable struct {
	data []byte
	arch string // GOARCH name, from the ELF header
}

// readStaticBinary reads dir/name and checks it can run in an image with no libc.
func readStaticBinary(dir, name string) (executable, error) {
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return executable{}, fmt.Errorf("%s binary not found in %s: run make build", name, dir)
	}
	return readELF(path, "build it with CGO_ENABLED=0 (make build)")
}

// readELF reads a static executable; fix says how to get a static one.
func readELF(path, fix string) (executable, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return executable{}, err
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return executable{}, fmt.Errorf("%s is not an ELF executable: %w", path, err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return executable{}, fmt.Errorf("%s is dynamically linked: %s", path, fix)
		}
	}
	arch, ok := goarch(f)
	if !ok {
		return executable{}, fmt.Errorf("%s: unsupported architecture %s", path, f.Machine)
	}
	return executable{data: data, arch: arch}, nil
}

// testboxRootfs lays out /testbox, busybox with its applets in /bin, a minimal
// /etc/passwd and /etc/group, and /tmp.
func testboxRootfs(ctx context.Context, testbox executable, busyboxPath string) (*layerBuilder, error) {
	const fix = "install busybox-static (make deps)"
	if _, err := os.Stat(busyboxPath); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s not found: %s", busyboxPath, fix)
	}
	busybox, err := readELF(busyboxPath, fix)
	if err != nil {
		return nil, err
	}
	if busybox.arch != testbox.arch {
		return nil, fmt.Errorf("%s is built for %s but testbox for %s: use a busybox of the image's architecture", busyboxPath, busybox.arch, testbox.arch)
	}
	out, err := exec.CommandContext(ctx, busyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w (is it busybox? install busybox-static (make deps))", busyboxPath, err)
	}
	b := newLayerBuilder()
	b.file("testbox", 0o755, testbox.data)
	b.dir("bin", 0o755)
	b.file("bin/busybox", 0o755, busybox.data)
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" && !strings.Contains(applet, "/") {
			b.symlink("bin/"+applet, "busybox")
		}
	}
	b.dir("etc", 0o755)
	b.file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	b.file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	b.dir("root", 0o700)
	b.dir("tmp", 0o1777)
	return b, nil
}

// buildImage wraps one layer into a linux/arch OCI image.
func buildImage(lb *layerBuilder, entrypoint []string, arch string) (v1.Image, error) {
	layer, err := lb.layer()
	if err != nil {
		return nil, err
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: arch,
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Entrypoint: entrypoint,
			Env:        []string{"PATH=/bin:/usr/bin:/sbin:/usr/sbin"},
			WorkingDir: "/",
		},
	})
	if err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	return mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "hoist images build"},
	})
}
