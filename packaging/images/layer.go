package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// layerBuilder collects files for one image layer and writes them
// reproducibly: sorted names, fixed mtimes, root ownership, and gzip with no
// name or timestamp in its header.
type layerBuilder struct {
	entries map[string]layerEntry
}

type layerEntry struct {
	hdr  tar.Header
	data []byte
}

func newLayerBuilder() *layerBuilder { return &layerBuilder{entries: map[string]layerEntry{}} }

func (b *layerBuilder) add(hdr tar.Header, data []byte) {
	hdr.ModTime = epoch
	hdr.Uid, hdr.Gid = 0, 0
	hdr.Size = int64(len(data))
	b.entries[hdr.Name] = layerEntry{hdr: hdr, data: data}
}

func (b *layerBuilder) dir(name string, mode int64) {
	b.add(tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode}, nil)
}

func (b *layerBuilder) file(name string, mode int64, data []byte) {
	b.add(tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode}, data)
}

func (b *layerBuilder) symlink(name, target string) {
	b.add(tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}, nil)
}

// tarball returns the uncompressed layer.
func (b *layerBuilder) tarball() ([]byte, error) {
	names := make([]string, 0, len(b.entries))
	for n := range b.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := b.entries[n]
		if err := tw.WriteHeader(&e.hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// layer compresses the tarball itself, so the digest does not depend on the
// compressor go-containerregistry happens to use.
func (b *layerBuilder) layer() (v1.Layer, error) {
	raw, err := b.tarball()
	if err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	compressed := gz.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(compressed)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
