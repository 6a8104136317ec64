package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/hoist-project/hoist/packaging/images"
)

const imagesUsage = `usage:
  hoist images build --out DIR [--bin-dir DIR] [--busybox PATH]
  hoist images list DIR
  hoist images import --address SOCK --namespace NS DIR
  hoist images push --registry HOST:PORT DIR`

// runImages builds, lists, imports and pushes hoist's own images.
func runImages(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError{"images: missing subcommand\n" + imagesUsage}
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "build":
		return imagesBuild(ctx, args)
	case "list":
		return imagesList(args)
	case "import":
		return imagesImport(ctx, args)
	case "push":
		return imagesPush(ctx, args)
	default:
		return usageError{fmt.Sprintf("images: unknown subcommand %q\n%s", sub, imagesUsage)}
	}
}

// parseImagesFlags parses fs and returns its positional arguments, which
// must number exactly nargs.
func parseImagesFlags(fs *flag.FlagSet, args []string, nargs int) ([]string, error) {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return nil, usageError{fmt.Sprintf("images %s: %v\n%s", fs.Name(), err, imagesUsage)}
	}
	if fs.NArg() != nargs {
		return nil, usageError{fmt.Sprintf("images %s: want %d argument(s), got %q\n%s", fs.Name(), nargs, fs.Args(), imagesUsage)}
	}
	return fs.Args(), nil
}

func imagesBuild(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	out := fs.String("out", "", "directory to write pause.tar and testbox.tar to")
	binDir := fs.String("bin-dir", "", "directory holding the pause and testbox binaries (default: this executable's directory)")
	busybox := fs.String("busybox", images.DefaultBusyboxPath, "static busybox to put into the testbox image")
	if _, err := parseImagesFlags(fs, args, 0); err != nil {
		return err
	}
	if *out == "" {
		return usageError{"images build: --out DIR is required"}
	}
	if *binDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find own executable (pass --bin-dir): %w", err)
		}
		*binDir = filepath.Dir(exe)
	}
	start := time.Now()
	built, err := images.Build(ctx, images.BuildOptions{OutDir: *out, BinDir: *binDir, BusyboxPath: *busybox})
	if err != nil {
		return err
	}
	printImages(built)
	fmt.Fprintf(os.Stderr, "built %d images in %s\n", len(built), time.Since(start).Round(time.Millisecond))
	return nil
}

func imagesList(args []string) error {
	pos, err := parseImagesFlags(flag.NewFlagSet("list", flag.ContinueOnError), args, 1)
	if err != nil {
		return err
	}
	imgs, err := images.List(pos[0])
	if err != nil {
		return err
	}
	printImages(imgs)
	return nil
}

func imagesImport(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	address := fs.String("address", "", "containerd socket, e.g. /run/containerd/containerd.sock")
	namespace := fs.String("namespace", "k8s.hoist", "containerd namespace")
	pos, err := parseImagesFlags(fs, args, 1)
	if err != nil {
		return err
	}
	if *address == "" {
		return usageError{"images import: --address SOCK is required"}
	}
	imgs, err := images.Import(ctx, *address, *namespace, pos[0])
	if err != nil {
		return err
	}
	printImages(imgs)
	return nil
}

func imagesPush(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	registry := fs.String("registry", "", "plain-HTTP registry HOST:PORT, e.g. 127.0.0.1:5000")
	pos, err := parseImagesFlags(fs, args, 1)
	if err != nil {
		return err
	}
	if *registry == "" {
		return usageError{"images push: --registry HOST:PORT is required"}
	}
	imgs, err := images.Push(ctx, *registry, pos[0])
	if err != nil {
		return err
	}
	printImages(imgs)
	return nil
}

func printImages(imgs []images.Image) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REF\tDIGEST\tARCHIVE")
	for _, img := range imgs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", img.Ref, img.Digest, img.Path)
	}
	_ = tw.Flush()
}
