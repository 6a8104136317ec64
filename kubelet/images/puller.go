package images

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/remotes"
	"github.com/containerd/containerd/remotes/docker"
	"golang.org/x/sync/singleflight"
	v1 "k8s.io/api/core/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
)

// Recorder records events on pods (client-go's record.EventRecorder).
type Recorder interface {
	Eventf(object kruntime.Object, eventtype, reason, messageFmt string, args ...interface{})
}

// Config of the image manager.
type Config struct {
	Client    *containerd.Client
	Namespace string       // containerd namespace
	Secrets   SecretGetter // optional: imagePullSecrets need it
	Events    Recorder     // optional
	Log       *slog.Logger
	// MaxPullsPerRegistry bounds parallel pulls from one registry host
	// (default 3); pulls from different registries do not wait on each other.
	MaxPullsPerRegistry int
	// PlainHTTP says which registry hosts speak plain HTTP (default:
	// localhost and loopback addresses, as containerd's MatchLocalhost).
	PlainHTTP   func(host string) (bool, error)
	Backoff     BackoffPolicy
	PullTimeout time.Duration // one pull, default 10 min
	Now         func() time.Time
}

// Manager makes images available to containers and garbage-collects them.
type Manager struct {
	cfg    Config
	flight singleflight.Group // one pull per image name at a time

	mu       sync.Mutex
	sems     map[string]chan struct{} // registry host → pull slots
	backoffs map[string]pullBackoff   // pod UID/image
	lastUsed map[string]time.Time     // image name → last container start
}

// New returns a manager; cfg.Client and cfg.Namespace are required.
func New(cfg Config) (*Manager, error) {
	if cfg.Client == nil || cfg.Namespace == "" {
		return nil, errors.New("images: containerd client and namespace are required")
	}
	if cfg.MaxPullsPerRegistry <= 0 {
		cfg.MaxPullsPerRegistry = 3
	}
	if cfg.PlainHTTP == nil {
		cfg.PlainHTTP = docker.MatchLocalhost
	}
	if cfg.PullTimeout <= 0 {
		cfg.PullTimeout = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Manager{cfg: cfg, sems: map[string]chan struct{}{}, backoffs: map[string]pullBackoff{}, lastUsed: map[string]time.Time{}}, nil
}

func (m *Manager) event(pod *v1.Pod, typ, reason, format string, args ...interface{}) {
	if m.cfg.Events != nil {
		m.cfg.Events.Eventf(pod, typ, reason, format, args...)
	}
}

// Ensure makes the image of container c available as its pull policy asks
// and returns the name containerd holds it under. A failure is an *Error
// whose Reason is the container's waiting reason (ErrImagePull, then
// ImagePullBackOff until the back-off expires; ErrImageNeverPull;
// InvalidImageName).
func (m *Manager) Ensure(ctx context.Context, pod *v1.Pod, c *v1.Container) (string, error) {
	ctx = namespaces.WithNamespace(ctx, m.cfg.Namespace)
	name, host, err := Normalize(c.Image)
	if err != nil {
		m.event(pod, v1.EventTypeWarning, "InspectFailed", "Failed to apply default image tag %q: %v", c.Image, err)
		return "", &Error{Reason: ReasonInvalidImageName, Message: err.Error()}
	}
	policy := Policy(c)
	if policy != v1.PullAlways {
		present, err := m.present(ctx, c.Image, name)
		if err != nil {
			return "", &Error{Reason: ReasonErrImagePull, Message: err.Error()}
		}
		if present != "" {
			m.used(present)
			m.event(pod, v1.EventTypeNormal, "Pulled", "Container image %q already present on machine", c.Image)
			return present, nil
		}
		if policy == v1.PullNever {
			msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
			m.event(pod, v1.EventTypeWarning, ReasonErrImageNeverPull, "%s", msg)
			return "", &Error{Reason: ReasonErrImageNeverPull, Message: msg}
		}
	}
	key := string(pod.UID) + "/" + c.Image
	m.mu.Lock()
	b := m.backoffs[key]
	m.mu.Unlock()
	if m.cfg.Now().Before(b.next) {
		m.event(pod, v1.EventTypeNormal, "BackOff", "Back-off pulling image %q", c.Image)
		return "", &Error{Reason: ReasonImagePullBackOff, Message: fmt.Sprintf("Back-off pulling image %q: %s", c.Image, b.err)}
	}
	m.event(pod, v1.EventTypeNormal, "Pulling", "Pulling image %q", c.Image)
	creds, warnings := podCreds(ctx, m.cfg.Secrets, pod)
	for _, w := range warnings {
		m.cfg.Log.Warn("image pull secret unusable", "pod", pod.Namespace+"/"+pod.Name, "err", w)
	}
	res, err := m.pull(ctx, name, host, creds)
	if err != nil {
		m.mu.Lock()
		m.backoffs[key] = m.cfg.Backoff.failed(b, m.cfg.Now(), err.Error())
		m.mu.Unlock()
		m.event(pod, v1.EventTypeWarning, "Failed", "Failed to pull image %q: %v", c.Image, err)
		m.cfg.Log.Warn("image pull failed", "pod", pod.Namespace+"/"+pod.Name, "image", c.Image, "err", err)
		return "", &Error{Reason: ReasonErrImagePull, Message: fmt.Sprintf("failed to pull image %q: %v", c.Image, err)}
	}
	m.mu.Lock()
	delete(m.backoffs, key)
	m.mu.Unlock()
	m.used(name)
	m.event(pod, v1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %s (%s including waiting). Image size: %d bytes.",
		c.Image, res.pulling.Round(time.Millisecond), res.total.Round(time.Millisecond), res.size)
	m.cfg.Log.Info("image pulled", "image", name, "took", res.total, "bytes", res.size)
	return name, nil
}

// EnsureSandboxImage makes the sandbox (pause) image available: present
// under the name given (air-gap archives keep short names) or its
// normalized name, else pulled anonymously — the image is the node's, not a
// pod's, as containerd's CRI pulls its sandbox image — once however many
// pods wait for it. It returns the name it is stored under. No events and
// no back-off of its own: a failed pull fails the pod's sync, which its
// worker retries with its back-off.
func (m *Manager) EnsureSandboxImage(ctx context.Context, ref string) (string, error) {
	ctx = namespaces.WithNamespace(ctx, m.cfg.Namespace)
	name, host, err := Normalize(ref)
	if err != nil {
		return "", err
	}
	present, err := m.present(ctx, ref, name)
	if err != nil {
		return "", err
	}
	if present != "" {
		return present, nil
	}
	m.cfg.Log.Info("pulling the sandbox image", "image", name)
	res, err := m.pull(ctx, name, host, nil)
	if err != nil {
		return "", fmt.Errorf("pull sandbox image %q: %w", ref, err)
	}
	m.used(name)
	m.cfg.Log.Info("image pulled", "image", name, "took", res.total, "bytes", res.size)
	return name, nil
}

// Forget drops the pull back-off of a removed pod.
func (m *Manager) Forget(pod *v1.Pod) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range append(append([]v1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		delete(m.backoffs, string(pod.UID)+"/"+c.Image)
	}
}

func (m *Manager) used(name string) {
	m.mu.Lock()
	m.lastUsed[name] = m.cfg.Now()
	m.mu.Unlock()
}

// present returns the stored name of an image given as written in the pod
// (air-gap archives keep short names like hoist.test/pause:3.10) or
// normalized, "" when absent.
func (m *Manager) present(ctx context.Context, names ...string) (string, error) {
	for _, n := range names {
		_, err := m.cfg.Client.ImageService().Get(ctx, n)
		if err == nil {
			return n, nil
		}
		if !errdefs.IsNotFound(err) {
			return "", fmt.Errorf("look up image %s: %w", n, err)
		}
	}
	return "", nil
}

type pullResult struct {
	pulling, total time.Duration
	size           int64
}

// pull pulls name once however many pods ask at the same time, holding one
// of the registry host's slots. The pull outlives a caller that gives up
// (its pod was removed): others may be waiting for it.
func (m *Manager) pull(ctx context.Context, name, host string, creds map[string]cred) (pullResult, error) {
	start := m.cfg.Now()
	ch := m.flight.DoChan(name, func() (interface{}, error) {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.PullTimeout)
		defer cancel()
		sem := m.slots(host)
		select {
		case sem <- struct{}{}:
		case <-pctx.Done():
			return nil, pctx.Err()
		}
		defer func() { <-sem }()
		began := m.cfg.Now()
		img, err := m.cfg.Client.Pull(pctx, name, containerd.WithResolver(m.resolver(creds)), containerd.WithPullUnpack)
		if err != nil {
			return nil, err
		}
		size, _ := img.Size(pctx)
		return pullResult{pulling: m.cfg.Now().Sub(began), size: size}, nil
	})
	select {
	case <-ctx.Done():
		return pullResult{}, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return pullResult{}, r.Err
		}
		res := r.Val.(pullResult)
		res.total = m.cfg.Now().Sub(start)
		return res, nil
	}
}

func (m *Manager) slots(host string) chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sems[host]
	if s == nil {
		s = make(chan struct{}, m.cfg.MaxPullsPerRegistry)
		m.sems[host] = s
	}
	return s
}

func (m *Manager) resolver(creds map[string]cred) remotes.Resolver {
	auth := docker.NewDockerAuthorizer(docker.WithAuthCreds(func(host string) (string, string, error) {
		c := creds[hostKey(host)]
		return c.user, c.pass, nil
	}))
	return docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(m.cfg.PlainHTTP), docker.WithAuthorizer(auth)),
	})
}
