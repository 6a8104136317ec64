package images

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

func TestPolicyDefaultsAsUpstream(t *testing.T) {
	for image, want := range map[string]v1.PullPolicy{
		"busybox":               v1.PullAlways,
		"busybox:latest":        v1.PullAlways,
		"reg:5000/x/busybox":    v1.PullAlways,
		"busybox:1.36":          v1.PullIfNotPresent,
		"reg:5000/busybox:1.36": v1.PullIfNotPresent,
		"busybox@sha256:" + strings.Repeat("a", 64): v1.PullIfNotPresent,
	} {
		if got := Policy(&v1.Container{Image: image}); got != want {
			t.Errorf("Policy(%q) = %s, want %s", image, got, want)
		}
	}
	if got := Policy(&v1.Container{Image: "busybox", ImagePullPolicy: v1.PullNever}); got != v1.PullNever {
		t.Errorf("an explicit policy must win, got %s", got)
	}
}

func TestNormalize(t *testing.T) {
	for image, want := range map[string][2]string{
		"busybox":                              {"docker.io/library/busybox:latest", "docker.io"},
		"127.0.0.1:5000/hoist.test/pause:3.10": {"127.0.0.1:5000/hoist.test/pause:3.10", "127.0.0.1:5000"},
		"hoist.test/testbox:1.0":               {"hoist.test/testbox:1.0", "hoist.test"},
	} {
		name, host, err := Normalize(image)
		if err != nil || name != want[0] || host != want[1] {
			t.Errorf("Normalize(%q) = %q, %q, %v; want %q, %q", image, name, host, err, want[0], want[1])
		}
	}
	if _, _, err := Normalize("UPPER/Case"); err == nil || !strings.Contains(err.Error(), "invalid image name") {
		t.Errorf("bad name: %v", err)
	}
}

func TestPullBackoffDoublesToMax(t *testing.T) {
	p := BackoffPolicy{Initial: time.Second, Max: 4 * time.Second}
	now := time.Unix(1000, 0)
	var b pullBackoff
	var delays []time.Duration
	for i := 0; i < 5; i++ {
		b = p.failed(b, now, "boom")
		delays = append(delays, b.delay)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}
	for i := range want {
		if delays[i] != want[i] {
			t.Fatalf("delays %v, want %v", delays, want)
		}
	}
	if !b.next.Equal(now.Add(4*time.Second)) || b.err != "boom" {
		t.Errorf("state %+v", b)
	}
	if d := (BackoffPolicy{}).failed(pullBackoff{}, now, "").delay; d != 10*time.Second {
		t.Errorf("default initial delay %v, want 10s", d)
	}
}

func secret(typ v1.SecretType, key, data string) *v1.Secret {
	s := &v1.Secret{Type: typ, Data: map[string][]byte{key: []byte(data)}}
	s.Namespace, s.Name = "ns", "regcred"
	return s
}

func TestParseDockerConfig(t *testing.T) {
	auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret:x"))
	s := secret(v1.SecretTypeDockerConfigJson, v1.DockerConfigJsonKey,
		`{"auths":{"http://127.0.0.1:5000":{"auth":"`+auth+`"},"https://index.docker.io/v1/":{"username":"bob","password":"pw"}}}`)
	creds, err := parseDockerConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	if c := creds["127.0.0.1:5000"]; c.user != "alice" || c.pass != "s3cret:x" {
		t.Errorf("loopback creds %+v", c)
	}
	if c := creds["docker.io"]; c.user != "bob" || c.pass != "pw" {
		t.Errorf("docker hub creds %+v", c)
	}
	legacy := secret(v1.SecretTypeDockercfg, v1.DockerConfigKey, `{"reg:5000":{"username":"u","password":"p"}}`)
	if creds, err := parseDockerConfig(legacy); err != nil || creds["reg:5000"].user != "u" {
		t.Errorf("legacy dockercfg: %+v %v", creds, err)
	}
	for _, bad := range []*v1.Secret{
		secret(v1.SecretTypeOpaque, "x", "{}"),
		secret(v1.SecretTypeDockerConfigJson, v1.DockerConfigJsonKey, "{nope"),
		secret(v1.SecretTypeDockerConfigJson, v1.DockerConfigJsonKey, `{"auths":{"r":{"auth":"!!"}}}`),
	} {
		if _, err := parseDockerConfig(bad); err == nil || !strings.Contains(err.Error(), "ns/regcred") {
			t.Errorf("secret %+v: error %v must name the secret", bad.Data, err)
		}
	}
}

func TestPodCredsSkipsMissingSecrets(t *testing.T) {
	pod := &v1.Pod{}
	pod.Namespace = "ns"
	pod.Spec.ImagePullSecrets = []v1.LocalObjectReference{{Name: "missing"}, {Name: "regcred"}}
	get := func(_ context.Context, ns, name string) (*v1.Secret, error) {
		if name == "missing" {
			return nil, errors.New("not found")
		}
		return secret(v1.SecretTypeDockerConfigJson, v1.DockerConfigJsonKey, `{"auths":{"r:5000":{"username":"u","password":"p"}}}`), nil
	}
	creds, warnings := podCreds(context.Background(), get, pod)
	if creds["r:5000"].user != "u" || len(warnings) != 1 || !strings.Contains(warnings[0], "ns/missing") {
		t.Errorf("creds %+v warnings %q", creds, warnings)
	}
}

func TestGCPolicyValidate(t *testing.T) {
	for _, p := range []GCPolicy{
		{HighThresholdPercent: 101, Dir: "/x"},
		{HighThresholdPercent: 50, LowThresholdPercent: 60, Dir: "/x"},
		{HighThresholdPercent: 85, LowThresholdPercent: 80},
	} {
		if p.Validate() == nil {
			t.Errorf("%+v must be rejected", p)
		}
	}
	if err := (GCPolicy{HighThresholdPercent: 85, LowThresholdPercent: 80, Dir: "/x"}).Validate(); err != nil {
		t.Error(err)
	}
}
