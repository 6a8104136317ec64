package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"

	"github.com/hoist-project/hoist/internal/fabric"
	"github.com/hoist-project/hoist/kubelet/network"
	"github.com/hoist-project/hoist/kubelet/runtime"
	"github.com/hoist-project/hoist/packaging/images"
)

// stopGrace is how long processes get between SIGTERM and SIGKILL.
const stopGrace = 15 * time.Second

// Down removes the cluster under dataDir: it stops every process, removes
// the pods of every node the way the kubelet does (containers, CNI DEL, pod
// netns, cgroups) and the rest of each node's containerd namespace, then
// the fabric (node namespaces take their links and iptables with them) and
// the state; the logs stay. It returns a line per removed thing, continues
// past errors, and is idempotent: no cluster means nothing to do.
func Down(ctx context.Context, dataDir string) ([]string, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	st, err := Load(abs)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	stopped, err := stopProcesses(ctx, st.Processes, stopGrace)
	for _, s := range stopped {
		removed = append(removed, "process "+s)
	}
	errs := []error{err}
	for _, n := range st.Nodes {
		if _, err := os.Stat(n.BPFPinDir); err == nil {
			// Unpinning detaches the eBPF proxy's programs (its process is gone).
			if err := os.RemoveAll(n.BPFPinDir); err != nil {
				errs = append(errs, fmt.Errorf("remove eBPF pins %s: %w", n.BPFPinDir, err))
			} else {
				removed = append(removed, "eBPF pins "+n.BPFPinDir)
			}
		}
	}
	if len(st.Nodes) > 0 {
		r, err := removeWorkloads(ctx, st)
		removed = append(removed, r...)
		errs = append(errs, err)
	}
	if f, ferr := fabric.Open(st.FabricStateDir, st.Fabric); ferr == nil {
		if err := f.Destroy(); err != nil {
			errs = append(errs, err)
		} else {
			removed = append(removed, fmt.Sprintf("fabric %s (%d node network namespaces)", st.Fabric, len(st.Nodes)))
		}
	} else if _, statErr := os.Stat(filepath.Join(st.FabricStateDir, st.Fabric+".json")); !errors.Is(statErr, os.ErrNotExist) {
		errs = append(errs, ferr)
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("%w\n(the cluster state %s is kept: run `hoist cluster down --data-dir %s` again once fixed)", err, layout{abs}.statePath(), abs)
	}
	l := layout{abs}
	for _, p := range []string{l.nodesDir(), l.masterDir(), l.flannelEtcdDir(), l.imageDir(), l.fabricDir(), l.adminKubeconfig()} {
		errs = append(errs, os.RemoveAll(p))
	}
	errs = append(errs, os.Remove(l.statePath()))
	return removed, errors.Join(errs...)
}

// removeWorkloads removes the pods and containers of every node.
func removeWorkloads(ctx context.Context, st *State) ([]string, error) {
	client, err := containerd.New(st.ContainerdAddress, containerd.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("containerd at %s: %w (start it, then run down again)", st.ContainerdAddress, err)
	}
	defer client.Close()
	var removed []string
	var errs []error
	for _, n := range st.Nodes {
		pods, err := removePods(ctx, client, st, n)
		if pods > 0 {
			removed = append(removed, fmt.Sprintf("%s of %s", count(pods, "pod"), n.Name))
		}
		errs = append(errs, err)
		ctrs, err := removeNamespace(ctx, client, n.ContainerdNamespace)
		if ctrs > 0 {
			removed = append(removed, fmt.Sprintf("%s of %s without a pod", count(ctrs, "container"), n.Name))
		}
		errs = append(errs, err)
		errs = append(errs, runtime.RemoveCgroupParent(n.CgroupParent))
	}
	return removed, errors.Join(errs...)
}

// removePods tears down every pod of node n with the kubelet's own runtime:
// containers, then sandboxes (CNI DEL in the node's namespace, pod netns,
// checkpoint), then pod cgroups. It returns the number of pods.
func removePods(ctx context.Context, client *containerd.Client, st *State, n NodeState) (int, error) {
	hostNS := n.NetnsPath
	if _, err := os.Stat(hostNS); err != nil {
		hostNS = "" // fabric already gone: plugins still release the leases
	}
	rt, err := runtime.New(runtime.Config{
		Client: client, Namespace: n.ContainerdNamespace, RootDir: n.Dirs.KubeletRoot, LogRoot: n.Dirs.PodLogs,
		PauseImage: images.PauseImage, CgroupParent: n.CgroupParent, LogDriver: "unused: down starts nothing",
		Network: network.New(network.Config{
			ConfDir: n.Dirs.CNIConfDir, BinDirs: []string{st.CNIBinDir},
			CacheDir: filepath.Join(n.Dirs.KubeletRoot, "cni-cache"), HostNetNS: hostNS,
		}),
	})
	if err != nil {
		return 0, err
	}
	refs, err := rt.ListPodRefs(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", n.Name, err)
	}
	var errs []error
	for uid := range refs {
		pod, err := rt.GetPod(ctx, uid)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, c := range pod.Containers {
			errs = append(errs, rt.RemoveContainer(ctx, c.ID, 0))
		}
		for _, sb := range pod.Sandboxes {
			errs = append(errs, rt.RemoveSandbox(ctx, pod, sb))
		}
		errs = append(errs, rt.RemovePodCgroup(uid))
	}
	if err := errors.Join(errs...); err != nil {
		return len(refs), fmt.Errorf("%s: remove pods: %w", n.Name, err)
	}
	return len(refs), nil
}

// removeNamespace deletes whatever containers the kubelet did not label as
// a pod's, the imported images, and the namespace itself.
func removeNamespace(ctx context.Context, client *containerd.Client, ns string) (int, error) {
	nctx := namespaces.WithNamespace(ctx, ns)
	ctrs, err := client.Containers(nctx)
	if err != nil {
		return 0, fmt.Errorf("list containers in %s: %w", ns, err)
	}
	var errs []error
	for _, c := range ctrs {
		if task, err := c.Task(nctx, nil); err == nil {
			if _, err := task.Delete(nctx, containerd.WithProcessKill); err != nil {
				errs = append(errs, fmt.Errorf("kill task %s/%s: %w", ns, c.ID(), err))
			}
		}
		if err := c.Delete(nctx, containerd.WithSnapshotCleanup); err != nil {
			errs = append(errs, fmt.Errorf("delete container %s/%s: %w", ns, c.ID(), err))
		}
	}
	imgs, err := client.ImageService().List(nctx)
	if err != nil {
		errs = append(errs, fmt.Errorf("list images in %s: %w", ns, err))
	}
	for _, img := range imgs {
		if err := client.ImageService().Delete(nctx, img.Name); err != nil {
			errs = append(errs, fmt.Errorf("delete image %s/%s: %w", ns, img.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return len(ctrs), err
	}
	// Content and snapshots go with containerd's garbage collection; the
	// namespace can only be deleted once they are gone, so a failure here
	// only leaves an empty name behind.
	_ = client.NamespaceService().Delete(nctx, ns)
	return len(ctrs), nil
}

// count is "1 pod", "2 pods".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
