package images

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations on index.json's manifest descriptors that carry the image name
// through `ctr images import` and containerd's client.Import (they are the
// ones containerd's own exporter writes).
const (
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = "org.opencontainers.image.ref.name"
)

// writeArchive writes img as an OCI image layout tarball named ref at path,
// atomically (a half-written archive never replaces a good one), and returns
// the manifest digest.
func writeArchive(path, ref string, img v1.Image) (string, error) {
	manifest, err := img.RawManifest()
	if err != nil {
		return "", err
	}
	mdgst, err := img.Digest()
	if err != nil {
		return "", err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return "", err
	}
	cdgst, err := img.ConfigName()
	if err != nil {
		return "", err
	}
	blobs := map[v1.Hash][]byte{mdgst: manifest, cdgst: config}
	layers, err := img.Layers()
	if err != nil {
		return "", err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return "", err
		}
		rc, err := l.Compressed()
		if err != nil {
			return "", err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return "", err
		}
		blobs[d] = data
	}
	index, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: types.OCIManifestSchema1,
			Digest:    mdgst,
			Size:      int64(len(manifest)),
			Annotations: map[string]string{
				annotationImageName: ref,
				annotationRefName:   tagOf(ref),
			},
		}},
	})
	if err != nil {
		return "", err
	}

	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	tw := tar.NewWriter(tmp)
	put := func(hdr tar.Header, data []byte) error {
		hdr.ModTime = epoch
		hdr.Size = int64(len(data))
		if err := tw.WriteHeader(&hdr); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	reg := func(name string, data []byte) error {
		return put(tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, data)
	}
	dir := func(name string) error {
		return put(tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}, nil)
	}
	steps := []func() error{
		func() error { return reg("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)) },
		func() error { return reg("index.json", index) },
		func() error { return dir("blobs/") },
		func() error { return dir("blobs/sha256/") },
	}
	digests := make([]v1.Hash, 0, len(blobs))
	for d := range blobs {
		digests = append(digests, d)
	}
	sort.Slice(digests, func(i, j int) bool { return digests[i].String() < digests[j].String() })
	for _, d := range digests {
		steps = append(steps, func() error { return reg("blobs/"+d.Algorithm+"/"+d.Hex, blobs[d]) })
	}
	steps = append(steps, tw.Close, tmp.Sync, tmp.Close)
	for _, step := range steps {
		if err := step(); err != nil {
			tmp.Close()
			return "", err
		}
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return mdgst.String(), nil
}

func tagOf(ref string) string {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[i+1:]
	}
	return "latest"
}

// List returns the images of every *.tar archive in dir, sorted by file name.
func List(dir string) ([]Image, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.tar"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("no image archives (*.tar) in %s: run `hoist images build --out %s`", dir, dir)
	}
	sort.Strings(paths)
	var out []Image
	for _, p := range paths {
		idx, err := readIndex(p)
		if err != nil {
			return nil, err
		}
		for _, m := range idx.Manifests {
			out = append(out, Image{Ref: m.Annotations[annotationImageName], Digest: m.Digest.String(), Path: p})
		}
	}
	return out, nil
}

// readIndex reads index.json out of an OCI archive.
func readIndex(path string) (*v1.IndexManifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s is not an OCI image archive: it has no index.json", path)
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if filepath.Clean(hdr.Name) != "index.json" {
			continue
		}
		var idx v1.IndexManifest
		if err := json.NewDecoder(tr).Decode(&idx); err != nil {
			return nil, fmt.Errorf("%s: bad index.json: %w", path, err)
		}
		for _, m := range idx.Manifests {
			if m.Annotations[annotationImageName] == "" {
				return nil, fmt.Errorf("%s: manifest %s has no %s annotation", path, m.Digest, annotationImageName)
			}
		}
		return &idx, nil
	}
}

// extractArchive unpacks an OCI archive into dir (an OCI image layout).
func extractArchive(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		name := filepath.Clean(hdr.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("%s: entry %q escapes the archive", path, hdr.Name)
		}
		target := filepath.Join(dir, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.Create(target)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}
