// Package images gets the kubelet the images its containers need: pull
// policies, registry credentials from imagePullSecrets, parallel pulls
// limited per registry, pull back-off (ErrImagePull, ImagePullBackOff) and
// events; and image garbage collection on the image filesystem (gc.go).
package images

import (
	"fmt"
	"strings"
	"time"

	"github.com/distribution/reference"
	v1 "k8s.io/api/core/v1"
)

// Waiting reasons of a container whose image is not there, as upstream.
const (
	ReasonErrImagePull      = "ErrImagePull"
	ReasonImagePullBackOff  = "ImagePullBackOff"
	ReasonErrImageNeverPull = "ErrImageNeverPull"
	ReasonInvalidImageName  = "InvalidImageName"
)

// Error is an image that could not be made available; Reason is the
// container's waiting reason.
type Error struct {
	Reason  string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Policy is a container's effective pull policy: as upstream, an empty
// policy means Always for `:latest` or untagged images, else IfNotPresent.
func Policy(c *v1.Container) v1.PullPolicy {
	if c.ImagePullPolicy != "" {
		return c.ImagePullPolicy
	}
	ref, err := reference.ParseNormalizedNamed(c.Image)
	if err != nil {
		return v1.PullIfNotPresent
	}
	if _, digested := ref.(reference.Digested); digested {
		return v1.PullIfNotPresent
	}
	if t, tagged := ref.(reference.Tagged); tagged && t.Tag() != "latest" {
		return v1.PullIfNotPresent
	}
	return v1.PullAlways
}

// Normalize returns the fully qualified name containerd stores a pulled image
// under (busybox → docker.io/library/busybox:latest) and its registry host.
func Normalize(image string) (name, host string, err error) {
	ref, err := reference.ParseDockerRef(image)
	if err != nil {
		return "", "", fmt.Errorf("invalid image name %q: %v", image, err)
	}
	return ref.String(), reference.Domain(ref), nil
}

// pullBackoff is the image pull back-off of one pod's image: after a failed
// pull the next attempt waits Initial, doubling up to Max (upstream: 10 s to
// 5 min).
type pullBackoff struct {
	delay time.Duration
	next  time.Time // no pull before this
	err   string    // the last failure
}

// BackoffPolicy holds the pull back-off tunables; zero values mean
// upstream's 10 s and 5 min.
type BackoffPolicy struct {
	Initial, Max time.Duration
}

func (p BackoffPolicy) failed(b pullBackoff, now time.Time, err string) pullBackoff {
	if p.Initial <= 0 {
		p.Initial = 10 * time.Second
	}
	if p.Max <= 0 {
		p.Max = 5 * time.Minute
	}
	d := p.Initial
	if b.delay > 0 {
		d = min(b.delay*2, p.Max)
	}
	return pullBackoff{delay: d, next: now.Add(d), err: err}
}

// hostKey reduces a docker config key ("https://index.docker.io/v1/",
// "http://127.0.0.1:5000", "reg:5000/some/path") to a registry host.
func hostKey(key string) string {
	key = strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	if i := strings.IndexByte(key, '/'); i >= 0 {
		key = key[:i]
	}
	switch key {
	case "index.docker.io", "registry-1.docker.io":
		return "docker.io"
	}
	return key
}
