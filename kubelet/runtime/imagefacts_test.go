package runtime

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/content"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// countingImage is a containerd image that counts its content reads.
type countingImage struct {
	containerd.Image
	manifest          digest.Digest
	config            []byte
	configs, rootfses int
	store             *countingStore
}

func (i *countingImage) Name() string               { return "example/app:1" }
func (i *countingImage) Target() ocispec.Descriptor { return ocispec.Descriptor{Digest: i.manifest} }
func (i *countingImage) Config(context.Context) (ocispec.Descriptor, error) {
	i.configs++
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(i.config), Size: int64(len(i.config))}, nil
}
func (i *countingImage) RootFS(context.Context) ([]digest.Digest, error) {
	i.rootfses++
	return []digest.Digest{digest.FromString("layer-" + string(i.manifest))}, nil
}
func (i *countingImage) ContentStore() content.Store { return i.store }

type countingStore struct {
	content.Store
	blobs map[digest.Digest][]byte
	reads int
}

func (s *countingStore) ReaderAt(_ context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	s.reads++
	return blobReader{bytes.NewReader(s.blobs[desc.Digest])}, nil
}

func newCountingImage(manifest string) *countingImage {
	cfg := []byte(`{"config":{"Entrypoint":["/` + manifest + `"]}}`)
	return &countingImage{manifest: digest.FromString(manifest), config: cfg,
		store: &countingStore{blobs: map[digest.Digest][]byte{digest.FromBytes(cfg): cfg, digest.FromString("other"): []byte("other")}}}
}

// TestImageFactsReadOnce: an image's config, config blob and root
// filesystem are read from containerd once per manifest digest; the
// wrapped image serves the same facts, and other blobs still come from the
// content store.
func TestImageFactsReadOnce(t *testing.T) {
	ctx := context.Background()
	var f imageFacts
	img := newCountingImage("app-v1")
	for range 3 {
		w, err := f.wrap(ctx, img)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := w.Config(ctx)
		if err != nil || cfg.Digest != digest.FromBytes(img.config) {
			t.Fatalf("Config = %v, %v", cfg, err)
		}
		blob, err := content.ReadBlob(ctx, w.ContentStore(), cfg)
		if err != nil || string(blob) != string(img.config) {
			t.Fatalf("config blob = %q, %v", blob, err)
		}
		ids, err := w.RootFS(ctx)
		if err != nil || len(ids) != 1 || ids[0] != digest.FromString("layer-"+string(img.manifest)) {
			t.Fatalf("RootFS = %v, %v", ids, err)
		}
	}
	if img.configs != 1 || img.rootfses != 1 || img.store.reads != 1 {
		t.Fatalf("containerd reads for 3 uses: %d config, %d rootfs, %d blob; want 1 each", img.configs, img.rootfses, img.store.reads)
	}
	w, _ := f.wrap(ctx, img)
	other := ocispec.Descriptor{Digest: digest.FromString("other"), Size: 5}
	if b, err := content.ReadBlob(ctx, w.ContentStore(), other); err != nil || string(b) != "other" || img.store.reads != 2 {
		t.Fatalf("another blob: %q, %v after %d store reads; want it read from the store", b, err, img.store.reads)
	}

	v2 := newCountingImage("app-v2") // the tag moved: a new manifest digest
	if _, err := f.wrap(ctx, v2); err != nil || v2.configs != 1 {
		t.Fatalf("a new manifest must be read (configs=%d, err=%v)", v2.configs, err)
	}
}

// TestImageFactsBounded: a node that runs many images keeps at most
// maxImageFacts of them.
func TestImageFactsBounded(t *testing.T) {
	var f imageFacts
	for i := range maxImageFacts + 10 {
		if _, err := f.wrap(context.Background(), newCountingImage(fmt.Sprintf("app-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.byDigest); n > maxImageFacts {
		t.Fatalf("%d images cached, want at most %d", n, maxImageFacts)
	}
}
