package images

import (
	"context"
	"fmt"
	"os"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"
)

// Import loads every archive in dir into the containerd at address, under
// namespace, and unpacks each image into the default snapshotter so it can
// run at once. Importing the same archives again changes nothing.
func Import(ctx context.Context, address, namespace, dir string) ([]Image, error) {
	client, err := containerd.New(address, containerd.WithDefaultNamespace(namespace))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", address, err)
	}
	defer client.Close()
	return ImportWithClient(namespaces.WithNamespace(ctx, namespace), client, dir)
}

// ImportWithClient is Import for a caller that already holds a client; ctx
// carries the containerd namespace.
func ImportWithClient(ctx context.Context, client *containerd.Client, dir string) ([]Image, error) {
	archives, err := List(dir)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []Image
	for _, a := range archives {
		if seen[a.Path] {
			continue
		}
		seen[a.Path] = true
		imgs, err := importArchive(ctx, client, a.Path)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", a.Path, err)
		}
		out = append(out, imgs...)
	}
	return out, nil
}

func importArchive(ctx context.Context, client *containerd.Client, path string) ([]Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	imported, err := client.Import(ctx, f)
	if err != nil {
		return nil, err
	}
	var out []Image
	for _, img := range imported {
		if err := containerd.NewImage(client, img).Unpack(ctx, ""); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", img.Name, err)
		}
		out = append(out, Image{Ref: img.Name, Digest: img.Target.Digest.String(), Path: path})
	}
	return out, nil
}
