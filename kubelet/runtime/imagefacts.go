package runtime

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/content"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// imageFacts keeps what creating a container reads from its image's
// content — the config blob and the layers' diff IDs — by manifest digest.
// Content is addressed by digest, so an entry never goes stale (a tag moved
// to a new image resolves to a new digest). Without it every container
// start asked containerd for the manifest, the config and their blob infos
// a few times over: about a quarter of the kubelet's calls to containerd
// when a batch of pods starts.
type imageFacts struct {
	mu       sync.Mutex
	byDigest map[digest.Digest]*facts
}

// maxImageFacts bounds the cache (a few KiB per image) for a node that runs
// many images over its life.
const maxImageFacts = 256

type facts struct {
	config     ocispec.Descriptor
	configBlob []byte
	diffIDs    []digest.Digest
}

// wrap returns img reading its config and root filesystem from the cache,
// filling the cache from containerd on the image's first use.
func (f *imageFacts) wrap(ctx context.Context, img containerd.Image) (containerd.Image, error) {
	key := img.Target().Digest
	f.mu.Lock()
	e := f.byDigest[key]
	f.mu.Unlock()
	if e == nil {
		var err error
		if e, err = readFacts(ctx, img); err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Name(), err)
		}
		f.mu.Lock()
		if f.byDigest == nil {
			f.byDigest = map[digest.Digest]*facts{}
		}
		if len(f.byDigest) >= maxImageFacts {
			for k := range f.byDigest { // images GC removed, or rarely used: any will do
				delete(f.byDigest, k)
				break
			}
		}
		f.byDigest[key] = e
		f.mu.Unlock()
	}
	return cachedImage{Image: img, f: e}, nil
}

func readFacts(ctx context.Context, img containerd.Image) (*facts, error) {
	cfg, err := img.Config(ctx)
	if err != nil {
		return nil, err
	}
	blob, err := content.ReadBlob(ctx, img.ContentStore(), cfg)
	if err != nil {
		return nil, err
	}
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		return nil, err
	}
	return &facts{config: cfg, configBlob: blob, diffIDs: diffIDs}, nil
}

// cachedImage is a containerd image whose config, config blob and root
// filesystem come from imageFacts; everything else is the image's own.
type cachedImage struct {
	containerd.Image
	f *facts
}

func (i cachedImage) Config(context.Context) (ocispec.Descriptor, error) { return i.f.config, nil }
func (i cachedImage) RootFS(context.Context) ([]digest.Digest, error) {
	return append([]digest.Digest(nil), i.f.diffIDs...), nil
}
func (i cachedImage) ContentStore() content.Store {
	return configStore{Store: i.Image.ContentStore(), f: i.f}
}

// configStore serves the image's config blob from memory.
type configStore struct {
	content.Store
	f *facts
}

func (s configStore) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if desc.Digest == s.f.config.Digest {
		return blobReader{bytes.NewReader(s.f.configBlob)}, nil
	}
	return s.Store.ReaderAt(ctx, desc)
}

// blobReader is a content.ReaderAt over bytes in memory.
type blobReader struct{ *bytes.Reader }

func (blobReader) Close() error { return nil }
