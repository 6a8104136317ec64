package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hoist-project/hoist/kubelet"
	"github.com/hoist-project/hoist/kubelet/runtime/crilog"
	"github.com/hoist-project/hoist/packaging/images"
)

const kubeletUsage = `usage: hoist kubelet [--root-dir DIR] [--manifest-dir DIR] [--containerd-address SOCK]
  [--containerd-namespace NS] [--cni-conf-dir DIR] [--cni-bin-dir DIR[:DIR...]] [--image-dir DIR]
  [--log-root DIR] [--node-name NAME] [--pause-image REF] [--cgroup-parent NAME] [--cni-host-netns PATH]
  [--sync-frequency DURATION]`

// runKubelet parses flags into kubelet.Config and runs the node agent. The
// same command, invoked by containerd's shim with --log-driver=FILE, is the
// per-container CRI logging driver.
func runKubelet(ctx context.Context, args []string) error {
	if path, ok := crilog.DriverPath(append([]string{"kubelet"}, args...)); ok {
		crilog.RunDriver(path) // never returns
	}
	var cfg kubelet.Config
	fs := flag.NewFlagSet("kubelet", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.RootDir, "root-dir", "/var/lib/hoist/kubelet", "kubelet state directory")
	fs.StringVar(&cfg.ManifestDir, "manifest-dir", "", "static pod manifest directory (empty: none)")
	fs.StringVar(&cfg.ContainerdAddress, "containerd-address", "/run/containerd/containerd.sock", "containerd socket")
	fs.StringVar(&cfg.ContainerdNamespace, "containerd-namespace", "k8s.hoist", "containerd namespace of this kubelet")
	fs.StringVar(&cfg.CNIConfDir, "cni-conf-dir", "/etc/cni/net.d", "CNI configuration directory")
	binDirs := fs.String("cni-bin-dir", "/opt/cni/bin", "CNI plugin directories, colon- or comma-separated, searched in order")
	fs.StringVar(&cfg.CNIHostNetNS, "cni-host-netns", "", "run CNI plugins in this netns path instead of the kubelet's own (nodes simulated as netns)")
	fs.StringVar(&cfg.ImageDir, "image-dir", "", "air-gap directory of image archives imported at start (empty: none)")
	fs.StringVar(&cfg.LogRoot, "log-root", "/var/log/pods", "container log root")
	fs.StringVar(&cfg.NodeName, "node-name", "", "node name (default: host name)")
	fs.StringVar(&cfg.PauseImage, "pause-image", images.PauseImage, "sandbox (pause) image")
	fs.StringVar(&cfg.CgroupParent, "cgroup-parent", "kubepods", "parent cgroup of all pods")
	resync := fs.Duration("sync-frequency", 10*time.Second, "periodic sync of every pod")
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("kubelet: %v\n%s", err, kubeletUsage)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("kubelet: unexpected arguments %q\n%s", fs.Args(), kubeletUsage)}
	}
	for _, d := range strings.FieldsFunc(*binDirs, func(r rune) bool { return r == ':' || r == ',' }) {
		cfg.CNIBinDirs = append(cfg.CNIBinDirs, filepath.Clean(d))
	}
	cfg.Resync = *resync
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	return kubelet.Run(ctx, cfg)
}
