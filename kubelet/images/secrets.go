package images

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// SecretGetter reads a secret of the pod's namespace (the kubelet passes the
// API client's; nil without an API).
type SecretGetter func(ctx context.Context, namespace, name string) (*v1.Secret, error)

// cred is one registry login.
type cred struct{ user, pass string }

type dockerAuth struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Auth     string `json:"auth"`
}

// parseDockerConfig returns the logins of a kubernetes.io/dockerconfigjson
// (`{"auths": {host: ...}}`) or legacy kubernetes.io/dockercfg
// (`{host: ...}`) secret, keyed by registry host.
func parseDockerConfig(s *v1.Secret) (map[string]cred, error) {
	var auths map[string]dockerAuth
	switch s.Type {
	case v1.SecretTypeDockerConfigJson:
		var cfg struct {
			Auths map[string]dockerAuth `json:"auths"`
		}
		if err := json.Unmarshal(s.Data[v1.DockerConfigJsonKey], &cfg); err != nil {
			return nil, fmt.Errorf("secret %s/%s: %s: %v", s.Namespace, s.Name, v1.DockerConfigJsonKey, err)
		}
		auths = cfg.Auths
	case v1.SecretTypeDockercfg:
		if err := json.Unmarshal(s.Data[v1.DockerConfigKey], &auths); err != nil {
			return nil, fmt.Errorf("secret %s/%s: %s: %v", s.Namespace, s.Name, v1.DockerConfigKey, err)
		}
	default:
		return nil, fmt.Errorf("secret %s/%s has type %q; imagePullSecrets must be %s", s.Namespace, s.Name, s.Type, v1.SecretTypeDockerConfigJson)
	}
	out := map[string]cred{}
	for key, a := range auths {
		c := cred{user: a.Username, pass: a.Password}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return nil, fmt.Errorf("secret %s/%s: auth of %s: not base64: %v", s.Namespace, s.Name, key, err)
			}
			u, p, ok := strings.Cut(string(raw), ":")
			if !ok {
				return nil, fmt.Errorf("secret %s/%s: auth of %s: want user:password", s.Namespace, s.Name, key)
			}
			c = cred{user: u, pass: p}
		}
		out[hostKey(key)] = c
	}
	return out, nil
}

// podCreds collects the logins of the pod's imagePullSecrets; the first
// secret naming a host wins. A missing secret is skipped (as upstream: the
// pull may still work anonymously) and reported in warnings.
func podCreds(ctx context.Context, get SecretGetter, pod *v1.Pod) (map[string]cred, []string) {
	out := map[string]cred{}
	var warnings []string
	if get == nil {
		return out, nil
	}
	for _, ref := range pod.Spec.ImagePullSecrets {
		s, err := get(ctx, pod.Namespace, ref.Name)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("imagePullSecret %s/%s: %v", pod.Namespace, ref.Name, err))
			continue
		}
		creds, err := parseDockerConfig(s)
		if err != nil {
			warnings = append(warnings, err.Error())
			continue
		}
		for h, c := range creds {
			if _, ok := out[h]; !ok {
				out[h] = c
			}
		}
	}
	return out, warnings
}
