package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strconv"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/oci"
	"github.com/distribution/reference"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/kubelet/network"
)

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// netnsName is the named netns of a sandbox; the hoist- prefix lets sweepers
// find leftovers.
func netnsName(sandboxID string) string { return "hoist-" + sandboxID[:24] }

// image looks ref up as written (air-gap archives keep short names) and
// then under its normalized name, which pulls store images under.
func (r *Runtime) image(ctx context.Context, ref string) (containerd.Image, error) {
	img, err := r.client.GetImage(ctx, ref)
	if errdefs.IsNotFound(err) {
		if named, perr := reference.ParseDockerRef(ref); perr == nil && named.String() != ref {
			img, err = r.client.GetImage(ctx, named.String())
		}
	}
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("image %s is not present in containerd namespace %s: put its archive in the kubelet's --image-dir", ref, r.cfg.Namespace)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	return r.images.wrap(ctx, img)
}

// CreateSandbox creates the pod's netns, attaches it with CNI and starts the
// pause container in it. On failure everything created is removed again.
func (r *Runtime) CreateSandbox(ctx context.Context, pod *v1.Pod) (sb *Sandbox, err error) {
	ctx = r.ns(ctx)
	img, err := r.image(ctx, r.cfg.PauseImage)
	if err != nil {
		return nil, err
	}
	id := newID()
	cp := checkpoint{ID: id, NetNS: nsutil.Path(netnsName(id)), PodUID: pod.UID, PodName: pod.Name, PodNamespace: pod.Namespace}
	if err := r.ckpt.write(cp); err != nil {
		return nil, fmt.Errorf("sandbox checkpoint: %w", err)
	}
	defer func() {
		if err != nil {
			// Undo with a context that survives the caller's cancellation.
			cerr := r.teardownSandbox(context.WithoutCancel(ctx), cp, 0)
			err = errors.Join(err, cerr)
		}
	}()
	nsPath, err := nsutil.CreateNamed(netnsName(id))
	if err != nil {
		return nil, err
	}
	ip, err := r.cfg.Network.Setup(ctx, r.attachment(cp))
	if err != nil {
		return nil, err
	}
	labels := podLabels(pod)
	labels[LabelKind] = string(KindSandbox)
	labels[LabelSandboxID] = id
	labels[LabelNetNS] = nsPath
	labels[LabelPodIP] = ip.String()
	labels[LabelStartedAt] = formatTime(time.Now())
	ctr, err := r.client.NewContainer(ctx, id,
		containerd.WithImage(img),
		containerd.WithNewSnapshot(id, img),
		containerd.WithContainerLabels(labels),
		containerd.WithNewSpec(
			oci.WithImageConfig(img),
			oci.WithHostname(pod.Name),
			oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: nsPath}),
			oci.WithCgroup(r.podCgroup(pod)+"/"+id),
			oci.WithCPUShares(2),
			oci.WithAnnotations(map[string]string{shimGroupAnnotation: id}),
		))
	if err != nil {
		return nil, fmt.Errorf("create pause container: %w", err)
	}
	r.index.add(pod.UID, id)
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		return nil, fmt.Errorf("create pause task: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		return nil, fmt.Errorf("start pause task: %w", err)
	}
	return &Sandbox{ID: id, NetNS: nsPath, IP: ip, Running: true, Pid: task.Pid(), CreatedAt: time.Now()}, nil
}

func (r *Runtime) attachment(cp checkpoint) network.Attachment {
	return network.Attachment{ID: cp.ID, NetNS: cp.NetNS, PodName: cp.PodName, PodNamespace: cp.PodNamespace, PodUID: string(cp.PodUID)}
}

// RemoveSandbox stops the pause container, detaches the network (CNI DEL),
// deletes the netns and the container, and forgets the checkpoint. It is
// idempotent: every step tolerates the thing already being gone.
func (r *Runtime) RemoveSandbox(ctx context.Context, pod *Pod, sb *Sandbox) error {
	ctx = r.ns(ctx)
	cp, err := r.ckpt.read(sb.ID)
	if err != nil {
		// No checkpoint (e.g. removed by hand): rebuild it from the labels.
		cp = checkpoint{ID: sb.ID, NetNS: sb.NetNS, PodUID: pod.UID, PodName: pod.Name, PodNamespace: pod.Namespace}
	}
	return r.teardownSandbox(ctx, cp, 0)
}

func (r *Runtime) teardownSandbox(ctx context.Context, cp checkpoint, grace time.Duration) error {
	if err := r.deleteContainer(ctx, cp.ID, grace); err != nil {
		return err
	}
	if cp.NetNS == "" {
		cp.NetNS = nsutil.Path(netnsName(cp.ID))
	}
	if err := r.cfg.Network.Teardown(ctx, r.attachment(cp)); err != nil {
		return err
	}
	if err := nsutil.DeleteNamed(netnsName(cp.ID)); err != nil {
		return err
	}
	return r.ckpt.remove(cp.ID)
}

// RemovePodCgroup removes the pod's cgroup once all its containers are gone.
// It tries every QoS tier: an orphaned pod's spec (and so its class) is unknown.
func (r *Runtime) RemovePodCgroup(uid types.UID) error {
	var errs []error
	for _, tier := range []string{"", "burstable", "besteffort"} {
		errs = append(errs, removePodCgroup(path.Join("/", r.cfg.CgroupParent, tier, "pod"+string(uid))))
	}
	return errors.Join(errs...)
}

// podLabels are the labels shared by all containers of a pod.
func podLabels(pod *v1.Pod) map[string]string {
	l := map[string]string{
		LabelPodUID: string(pod.UID), LabelPodName: pod.Name, LabelPodNamespace: pod.Namespace,
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		l[LabelGrace] = strconv.FormatInt(*g, 10)
	}
	return l
}

// rebuildCheckpoint returns the rebuild function for checkpoints that cannot
// be read: the pause container (container ID = sandbox ID) carries the pod
// and the netns in its labels.
func (r *Runtime) rebuildCheckpoint(ctx context.Context) rebuildFunc {
	return func(id string) (checkpoint, bool, error) {
		c, err := r.client.LoadContainer(ctx, id)
		if errdefs.IsNotFound(err) {
			return checkpoint{}, false, nil
		}
		if err != nil {
			return checkpoint{}, false, err
		}
		l, err := c.Labels(ctx)
		if errdefs.IsNotFound(err) {
			return checkpoint{}, false, nil
		}
		if err != nil {
			return checkpoint{}, false, err
		}
		if l[LabelPodUID] == "" {
			return checkpoint{}, false, nil // not a pause container of ours: teardown removes it
		}
		netns := l[LabelNetNS]
		if netns == "" {
			netns = nsutil.Path(netnsName(id))
		}
		return checkpoint{ID: id, NetNS: netns, PodUID: types.UID(l[LabelPodUID]),
			PodName: l[LabelPodName], PodNamespace: l[LabelPodNamespace]}, true, nil
	}
}

// teardownPodless tears down a sandbox known only from a checkpoint of no
// pod (see checkpoints.load); a failure is logged and retried on the next scan.
func (r *Runtime) teardownPodless(ctx context.Context, cp checkpoint) {
	if err := r.teardownSandbox(ctx, cp, 0); err != nil && ctx.Err() == nil {
		r.cfg.Log.Warn("tearing down a sandbox of no pod failed; retrying on the next orphan scan",
			"file", r.ckpt.path(cp.ID), "netns", cp.NetNS, "err", err)
	}
}
