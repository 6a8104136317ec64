package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hoist-project/hoist/kubelet"
	"github.com/hoist-project/hoist/kubelet/runtime/crilog"
	"github.com/hoist-project/hoist/packaging/images"
)

const kubeletUsage = `usage: hoist kubelet [--root-dir DIR] [--manifest-dir DIR] [--containerd-address SOCK]
  [--containerd-namespace NS] [--cni-conf-dir DIR] [--cni-bin-dir DIR[:DIR...]] [--image-dir DIR]
  [--log-root DIR] [--node-name NAME] [--pause-image REF] [--cgroup-parent NAME] [--cni-host-netns PATH]
  [--sync-frequency DURATION] [--kubeconfig FILE] [--node-ip IP] [--node-labels K=V,...]
  [--register-with-taints K=V:EFFECT,...] [--max-pods N] [--insecure-registry HOST[:PORT],...]
  [--max-parallel-image-pulls-per-registry N] [--image-fs-dir DIR]
  [--image-gc-high-threshold PCT] [--image-gc-low-threshold PCT] [--resolv-conf FILE]
  [--container-log-max-size QUANTITY] [--container-log-max-files N] [--stop-pods] [--stop-pods-timeout DURATION]
  [--max-parallel-pod-starts N] [--join-server URL --join-token TOKEN --join-ca-cert-hash sha256:HEX]`

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
	fs.IntVar(&cfg.ParallelPodStarts, "max-parallel-pod-starts", kubelet.DefaultParallelPodStarts, "pods creating their sandbox or starting a container at once, oldest first")
	fs.BoolVar(&cfg.StopPods, "stop-pods", false, "stop every pod gracefully when the kubelet stops (default: leave them running)")
	fs.DurationVar(&cfg.StopPodsTimeout, "stop-pods-timeout", kubelet.DefaultStopPodsTimeout, "deadline of --stop-pods; pod grace periods are capped to leave 10s of it for teardown")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the API server (empty: static pods only, or <root-dir>/kubelet.kubeconfig with the join flags)")
	var jf joinFlags
	jf.register(fs)
	fs.StringVar(&cfg.HostIP, "node-ip", "", "node InternalIP (default: the first global IPv4 address)")
	nodeLabels := fs.String("node-labels", "", "labels added to the Node: key=value,...")
	taints := fs.String("register-with-taints", "", "taints of the Node at registration: key=value:Effect,...")
	fs.Int64Var(&cfg.MaxPods, "max-pods", 110, "pods this node can run (node capacity)")
	insecure := fs.String("insecure-registry", "", "registries pulled over plain HTTP besides localhost: host[:port],...")
	fs.IntVar(&cfg.MaxPullsPerRegistry, "max-parallel-image-pulls-per-registry", 3, "parallel image pulls from one registry")
	fs.StringVar(&cfg.ImageFSDir, "image-fs-dir", "/var/lib/containerd", "containerd's root: the image filesystem watched by image GC")
	fs.IntVar(&cfg.ImageGCHighThresholdPercent, "image-gc-high-threshold", 85, "image filesystem usage (%) that starts image GC; 100 disables it")
	fs.IntVar(&cfg.ImageGCLowThresholdPercent, "image-gc-low-threshold", 80, "image filesystem usage (%) image GC frees down to")
	fs.StringVar(&cfg.ResolvConf, "resolv-conf", "/etc/resolv.conf", "resolver configuration copied into pods (\"-\": none)")
	logMaxSize := fs.String("container-log-max-size", "10Mi", "size at which a container's log file is rotated")
	fs.IntVar(&cfg.ContainerLogMaxFiles, "container-log-max-files", 5, "log files kept per container, the current one included (at least 2)")
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("kubelet: %v\n%s", err, kubeletUsage)}
	}
	q, qerr := resource.ParseQuantity(*logMaxSize)
	if qerr != nil || q.Value() <= 0 {
		return usageError{fmt.Sprintf("kubelet: --container-log-max-size %q is not a positive size like 10Mi", *logMaxSize)}
	}
	cfg.ContainerLogMaxSize = q.Value()
	if cfg.ContainerLogMaxFiles < 2 {
		return usageError{fmt.Sprintf("kubelet: --container-log-max-files %d: must be at least 2", cfg.ContainerLogMaxFiles)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("kubelet: unexpected arguments %q\n%s", fs.Args(), kubeletUsage)}
	}
	if err := jf.check(); err != nil {
		return err
	}
	for _, d := range strings.FieldsFunc(*binDirs, func(r rune) bool { return r == ':' || r == ',' }) {
		cfg.CNIBinDirs = append(cfg.CNIBinDirs, filepath.Clean(d))
	}
	cfg.Resync = *resync
	if cfg.ParallelPodStarts < 1 {
		return usageError{fmt.Sprintf("kubelet: --max-parallel-pod-starts %d: must be at least 1", cfg.ParallelPodStarts)}
	}
	if cfg.StopPodsTimeout <= 0 {
		return usageError{fmt.Sprintf("kubelet: --stop-pods-timeout %s: must be positive", cfg.StopPodsTimeout)}
	}
	cfg.InsecureRegistries = strings.FieldsFunc(*insecure, func(r rune) bool { return r == ',' })
	if cfg.HostIP != "" && net.ParseIP(cfg.HostIP) == nil {
		return usageError{fmt.Sprintf("kubelet: --node-ip %q is not an IP address", cfg.HostIP)}
	}
	var err error
	if cfg.NodeLabels, err = parseNodeLabels(*nodeLabels); err != nil {
		return usageError{"kubelet: --node-labels: " + err.Error()}
	}
	if cfg.NodeTaints, err = parseTaints(*taints); err != nil {
		return usageError{"kubelet: --register-with-taints: " + err.Error()}
	}
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	if jf.given() {
		if cfg.NodeName == "" { // the kubelet's own default, resolved now: the certificate names it
			if cfg.NodeName, err = os.Hostname(); err != nil {
				return fmt.Errorf("kubelet: node name: %w", err)
			}
		}
		if *kubeconfig, err = jf.nodeKubeconfig(ctx, cfg.Log, *kubeconfig, cfg.RootDir, cfg.NodeName); err != nil {
			return err
		}
	}
	if *kubeconfig != "" {
		rc, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
		if err != nil {
			return fmt.Errorf("kubelet: --kubeconfig %s: %w", *kubeconfig, err)
		}
		// The node authorizer reads the object a node creates from the body,
		// which it decodes as JSON (client-go defaults to protobuf).
		rc.ContentType = "application/json"
		// client-go's default 5 QPS makes 100 new pods' status writes queue
		// for a minute; upstream's kubelet defaults to 50 QPS, burst 100.
		rc.QPS, rc.Burst = 50, 100
		if cfg.Client, err = kubernetes.NewForConfig(rc); err != nil {
			return fmt.Errorf("kubelet: --kubeconfig %s: %w", *kubeconfig, err)
		}
	}
	preferSmallHeap(50) // the kubelet's heap is small and steady
	return kubelet.Run(ctx, cfg)
}

// parseNodeLabels parses key=value,... into labels, validating both parts.
func parseNodeLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' }) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("%q: want key=value", kv)
		}
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return nil, fmt.Errorf("label key %q: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return nil, fmt.Errorf("label %s value %q: %s", k, v, strings.Join(errs, "; "))
		}
		out[k] = v
	}
	return out, nil
}

// parseTaints parses key[=value]:Effect,... as upstream's flag does.
func parseTaints(s string) ([]v1.Taint, error) {
	var out []v1.Taint
	for _, spec := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' }) {
		kv, effect, ok := strings.Cut(spec, ":")
		if !ok {
			return nil, fmt.Errorf("%q: want key=value:Effect", spec)
		}
		switch e := v1.TaintEffect(effect); e {
		case v1.TaintEffectNoSchedule, v1.TaintEffectPreferNoSchedule, v1.TaintEffectNoExecute:
		default:
			return nil, fmt.Errorf("%q: effect must be NoSchedule, PreferNoSchedule or NoExecute", spec)
		}
		k, v, _ := strings.Cut(kv, "=")
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return nil, fmt.Errorf("taint key %q: %s", k, strings.Join(errs, "; "))
		}
		out = append(out, v1.Taint{Key: k, Value: v, Effect: v1.TaintEffect(effect)})
	}
	return out, nil
}
