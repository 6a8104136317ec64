package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"

	"github.com/hoist-project/hoist/kubelet/runtime/crilog"
)

// ContainerHash identifies a container spec: a changed hash means the
// running container no longer matches what the pod asks for.
func ContainerHash(c *v1.Container) string {
	data, _ := json.Marshal(c)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// LogPath is the CRI log file of one run of a container.
func (r *Runtime) LogPath(pod *v1.Pod, container string, restart int) string {
	return filepath.Join(r.PodLogDir(pod.Namespace, pod.Name, string(pod.UID)), container, strconv.Itoa(restart)+".log")
}

// PodLogDir is <log-root>/<ns>_<name>_<uid>.
func (r *Runtime) PodLogDir(ns, name, uid string) string {
	return filepath.Join(r.cfg.LogRoot, ns+"_"+name+"_"+uid)
}

// StartSpec is everything needed to start one container of a pod.
type StartSpec struct {
	Pod       *v1.Pod
	Container *v1.Container
	Kind      Kind
	Sandbox   *Sandbox
	Restart   int
	Last      *Exit             // the run this one replaces, kept for status
	Volumes   map[string]string // volume name → host path
	HostIP    string
	Image     string // the name containerd holds the image under; "" = Container.Image
}

// StartContainer creates and starts a container in the sandbox.
func (r *Runtime) StartContainer(ctx context.Context, s StartSpec) (string, error) {
	ctx = r.ns(ctx)
	c := s.Container
	ref := s.Image
	if ref == "" {
		ref = c.Image
	}
	img, err := r.image(ctx, ref)
	if err != nil {
		return "", err
	}
	id := newID()
	labels := podLabels(s.Pod)
	labels[LabelKind] = string(s.Kind)
	labels[LabelContainerName] = c.Name
	labels[LabelSandboxID] = s.Sandbox.ID
	labels[LabelRestart] = strconv.Itoa(s.Restart)
	labels[LabelHash] = ContainerHash(c)
	labels[LabelTermPolicy] = string(c.TerminationMessagePolicy)
	if s.Last != nil {
		labels[LabelLastExitCode] = strconv.Itoa(s.Last.Code)
		labels[LabelLastStarted] = formatTime(s.Last.StartedAt)
		labels[LabelLastFinished] = formatTime(s.Last.FinishedAt)
	}
	opts, err := r.specOpts(s, img)
	if err != nil {
		return "", err
	}
	ctr, err := r.client.NewContainer(ctx, id,
		containerd.WithImage(img),
		containerd.WithNewSnapshot(id, img),
		containerd.WithContainerLabels(labels),
		containerd.WithNewSpec(opts...))
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", c.Name, err)
	}
	r.index.add(s.Pod.UID, id)
	logPath := r.LogPath(s.Pod, c.Name, s.Restart)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return id, err
	}
	task, err := ctr.NewTask(ctx, cio.BinaryIO(r.cfg.LogDriver, crilog.DriverArgs(logPath, r.cfg.LogRotation)))
	if err != nil {
		return id, fmt.Errorf("create task %s: %w", c.Name, err)
	}
	if _, err := ctr.SetLabels(ctx, map[string]string{LabelStartedAt: formatTime(time.Now())}); err != nil {
		return id, err
	}
	if err := task.Start(ctx); err != nil {
		return id, fmt.Errorf("start %s: %w", c.Name, err)
	}
	return id, nil
}

// specOpts builds the OCI spec of an app or init container.
func (r *Runtime) specOpts(s StartSpec, img containerd.Image) ([]oci.SpecOpts, error) {
	c := s.Container
	opts := []oci.SpecOpts{oci.WithImageConfigArgs(img, c.Args)}
	if len(c.Command) > 0 {
		opts = append(opts, oci.WithProcessArgs(append(append([]string{}, c.Command...), c.Args...)...))
	}
	if c.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(c.WorkingDir))
	}
	env, err := containerEnv(s)
	if err != nil {
		return nil, err
	}
	opts = append(opts, oci.WithEnv(env)) // the hostname comes with the pause container's UTS namespace
	sec, err := securityOpts(s.Pod, c)
	if err != nil {
		return nil, err
	}
	opts = append(opts, sec...)
	pid := strconv.Itoa(int(s.Sandbox.Pid))
	for _, ns := range []specs.LinuxNamespaceType{specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace} {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: ns, Path: "/proc/" + pid + "/ns/" + nsFile(ns)}))
	}
	var mounts []specs.Mount
	for _, m := range c.VolumeMounts {
		src, ok := s.Volumes[m.Name]
		if !ok {
			return nil, fmt.Errorf("container %s: volume %s not prepared", c.Name, m.Name)
		}
		if m.SubPath != "" {
			src = filepath.Join(src, m.SubPath)
		}
		o := []string{"rbind", "rprivate", "rw"}
		if m.ReadOnly {
			o[2] = "ro"
		}
		mounts = append(mounts, specs.Mount{Destination: m.MountPath, Type: "bind", Source: src, Options: o})
	}
	etc, err := r.etcMounts(s)
	if err != nil {
		return nil, err
	}
	if tm, err := r.terminationMount(s); err != nil {
		return nil, fmt.Errorf("container %s: termination message file: %w", c.Name, err)
	} else if tm != nil {
		etc = append(etc, *tm)
	}
	opts = append(opts, oci.WithMounts(append(mounts, etc...)),
		oci.WithAnnotations(map[string]string{shimGroupAnnotation: s.Sandbox.ID}))
	shares, quota, period, mem := containerResources(c)
	opts = append(opts, oci.WithCgroup(r.podCgroup(s.Pod)+"/"+c.Name+"-"+strconv.Itoa(s.Restart)), oci.WithCPUShares(shares))
	if quota > 0 {
		opts = append(opts, oci.WithCPUCFS(quota, period))
	}
	if mem > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(mem)))
	}
	return opts, nil
}

func nsFile(t specs.LinuxNamespaceType) string {
	switch t {
	case specs.NetworkNamespace:
		return "net"
	case specs.IPCNamespace:
		return "ipc"
	case specs.UTSNamespace:
		return "uts"
	}
	return string(t)
}

// containerEnv resolves env values and downward-API field references.
func containerEnv(s StartSpec) ([]string, error) {
	var env []string
	for _, e := range s.Container.Env {
		v := e.Value
		if e.ValueFrom != nil {
			if e.ValueFrom.FieldRef == nil {
				return nil, fmt.Errorf("container %s: env %s: only fieldRef is supported", s.Container.Name, e.Name)
			}
			var err error
			if v, err = fieldValue(s, e.ValueFrom.FieldRef.FieldPath); err != nil {
				return nil, fmt.Errorf("container %s: env %s: %w", s.Container.Name, e.Name, err)
			}
		}
		env = append(env, e.Name+"="+v)
	}
	return env, nil
}

func fieldValue(s StartSpec, path string) (string, error) {
	switch path {
	case "metadata.name":
		return s.Pod.Name, nil
	case "metadata.namespace":
		return s.Pod.Namespace, nil
	case "metadata.uid":
		return string(s.Pod.UID), nil
	case "spec.nodeName":
		return s.Pod.Spec.NodeName, nil
	case "status.podIP":
		return s.Sandbox.IP.String(), nil
	case "status.hostIP":
		return s.HostIP, nil
	}
	return "", fmt.Errorf("fieldRef %q is not supported", path)
}
