package images

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/hoist-project/hoist/internal/testenv"
)

// binDir returns a directory holding the pause and testbox binaries.
func binDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"pause", "testbox"} {
		if err := os.Symlink(testenv.Binary(t, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func requireBusybox(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(DefaultBusyboxPath); err != nil {
		t.Fatalf("%s missing: install busybox-static (make deps)", DefaultBusyboxPath)
	}
}

// buildImages builds both images into a fresh directory.
func buildImages(t *testing.T, bins string) (string, []Image) {
	t.Helper()
	requireBusybox(t)
	out := t.TempDir()
	imgs, err := Build(context.Background(), BuildOptions{OutDir: out, BinDir: bins})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return out, imgs
}

func TestBuildIsDeterministic(t *testing.T) {
	bins := binDir(t)
	dirA, a := buildImages(t, bins)
	dirB, b := buildImages(t, bins)
	if len(a) != 2 || len(b) != 2 {
		t.Fatalf("built %d and %d images, want 2 each", len(a), len(b))
	}
	for i := range a {
		if a[i].Ref != b[i].Ref || a[i].Digest != b[i].Digest {
			t.Errorf("image %d: %s@%s vs %s@%s", i, a[i].Ref, a[i].Digest, b[i].Ref, b[i].Digest)
		}
		ba, err := os.ReadFile(a[i].Path)
		if err != nil {
			t.Fatal(err)
		}
		bb, err := os.ReadFile(b[i].Path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ba, bb) {
			t.Errorf("%s: archives in %s and %s differ", a[i].Ref, dirA, dirB)
		}
	}
	if a[0].Ref != PauseImage || a[1].Ref != TestboxImage {
		t.Errorf("refs %q, %q; want %q, %q", a[0].Ref, a[1].Ref, PauseImage, TestboxImage)
	}
	listed, err := List(dirA)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 2 || listed[0] != a[0] || listed[1] != a[1] {
		t.Errorf("List = %+v, want %+v", listed, a)
	}
}

// TestTestboxImageContents opens the archive as an OCI layout and checks the
// entrypoint and the files a pod relies on.
func TestTestboxImageContents(t *testing.T) {
	_, imgs := buildImages(t, binDir(t))
	lp := t.TempDir()
	if err := extractArchive(imgs[1].Path, lp); err != nil {
		t.Fatal(err)
	}
	idx, err := layout.ImageIndexFromPath(lp)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := v1.NewHash(imgs[1].Digest)
	img, err := idx.Image(h)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Config.Entrypoint, " "); got != "/testbox" {
		t.Errorf("entrypoint %q, want /testbox", got)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || hdr.ModTime.Unix() != 0 {
			t.Errorf("%s: uid %d gid %d mtime %v, want root and epoch", hdr.Name, hdr.Uid, hdr.Gid, hdr.ModTime)
		}
		files[hdr.Name] = hdr
	}
	for _, name := range []string{"testbox", "bin/busybox", "etc/passwd", "etc/group", "tmp/"} {
		if files[name] == nil {
			t.Errorf("image lacks %s", name)
		}
	}
	for _, applet := range []string{"sh", "sleep", "wget", "ps"} {
		if h := files["bin/"+applet]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
			t.Errorf("bin/%s is not a symlink to busybox: %+v", applet, h)
		}
	}
}

func TestBuildNamesMissingInputs(t *testing.T) {
	empty := t.TempDir()
	_, err := Build(context.Background(), BuildOptions{OutDir: t.TempDir(), BinDir: empty})
	if err == nil || !strings.Contains(err.Error(), "pause binary not found in "+empty+": run make build") {
		t.Errorf("no binaries: %v", err)
	}
	_, err = Build(context.Background(), BuildOptions{OutDir: t.TempDir(), BinDir: binDir(t), BusyboxPath: "/nonexistent/busybox"})
	if err == nil || !strings.Contains(err.Error(), "install busybox-static (make deps)") {
		t.Errorf("no busybox: %v", err)
	}
	if _, err := List(empty); err == nil || !strings.Contains(err.Error(), "hoist images build") {
		t.Errorf("List of empty dir: %v", err)
	}
}

func TestBuildRejectsMixedArchitectures(t *testing.T) {
	bins := t.TempDir()
	pause, err := os.ReadFile(testenv.Binary(t, "pause"))
	if err != nil {
		t.Fatal(err)
	}
	// Relabel the ELF header's e_machine (offset 18): an arm64 pause next to a host testbox.
	binary.LittleEndian.PutUint16(pause[18:], uint16(elf.EM_AARCH64))
	if err := os.WriteFile(filepath.Join(bins, "pause"), pause, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(testenv.Binary(t, "testbox"), filepath.Join(bins, "testbox")); err != nil {
		t.Fatal(err)
	}
	_, err = Build(context.Background(), BuildOptions{OutDir: t.TempDir(), BinDir: bins})
	if err == nil || !strings.Contains(err.Error(), "pause is built for arm64 but testbox for") {
		t.Fatalf("mixed architectures: %v", err)
	}
}
