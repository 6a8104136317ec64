package config

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// typeMeta is enough of an object to tell a Pod from a List.
type typeMeta struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Items      []json.RawMessage `json:"items"`
}

// DecodeManifest parses one manifest file (YAML or JSON; several YAML
// documents; a v1 List or PodList) into pods. Unknown fields are errors, so a
// typo names the field instead of being dropped silently.
func DecodeManifest(data []byte) ([]*v1.Pod, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var pods []*v1.Pod
	for doc := 1; ; doc++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 || isOnlyComments(raw) {
			continue
		}
		js, err := yaml.YAMLToJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		var tm typeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		switch tm.Kind {
		case "Pod":
			p, err := decodePod(js)
			if err != nil {
				return nil, fmt.Errorf("document %d: %w", doc, err)
			}
			pods = append(pods, p)
		case "List", "PodList":
			for i, item := range tm.Items {
				p, err := decodePod(item)
				if err != nil {
					return nil, fmt.Errorf("document %d: items[%d]: %w", doc, i, err)
				}
				pods = append(pods, p)
			}
		case "":
			return nil, fmt.Errorf("document %d: field kind: missing (want Pod or List)", doc)
		default:
			return nil, fmt.Errorf("document %d: field kind: %q is not supported (want Pod or List)", doc, tm.Kind)
		}
	}
	return pods, nil
}

func isOnlyComments(raw []byte) bool {
	for _, l := range strings.Split(string(raw), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") && l != "---" {
			return false
		}
	}
	return true
}

func decodePod(js []byte) (*v1.Pod, error) {
	var tm typeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return nil, err
	}
	if tm.Kind != "Pod" {
		return nil, fmt.Errorf("field kind: %q is not a Pod", tm.Kind)
	}
	if tm.APIVersion != "v1" {
		return nil, fmt.Errorf("field apiVersion: %q is not supported (want v1)", tm.APIVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var pod v1.Pod
	if err := dec.Decode(&pod); err != nil {
		return nil, err
	}
	if err := validatePod(&pod); err != nil {
		return nil, err
	}
	return &pod, nil
}

// validatePod checks what the kubelet relies on; messages name the field.
func validatePod(p *v1.Pod) error {
	if p.Name == "" {
		return errors.New("field metadata.name: required")
	}
	if errs := validation.IsDNS1123Subdomain(p.Name); len(errs) > 0 {
		return fmt.Errorf("field metadata.name: %q: %s", p.Name, strings.Join(errs, "; "))
	}
	if p.Namespace != "" {
		if errs := validation.IsDNS1123Label(p.Namespace); len(errs) > 0 {
			return fmt.Errorf("field metadata.namespace: %q: %s", p.Namespace, strings.Join(errs, "; "))
		}
	}
	if len(p.Spec.Containers) == 0 {
		return errors.New("field spec.containers: at least one container is required")
	}
	switch p.Spec.RestartPolicy {
	case "", v1.RestartPolicyAlways, v1.RestartPolicyOnFailure, v1.RestartPolicyNever:
	default:
		return fmt.Errorf("field spec.restartPolicy: %q (want Always, OnFailure or Never)", p.Spec.RestartPolicy)
	}
	volumes := map[string]bool{}
	for i, vol := range p.Spec.Volumes {
		f := fmt.Sprintf("spec.volumes[%d]", i)
		if errs := validation.IsDNS1123Label(vol.Name); len(errs) > 0 {
			return fmt.Errorf("field %s.name: %q: %s", f, vol.Name, strings.Join(errs, "; "))
		}
		if volumes[vol.Name] {
			return fmt.Errorf("field %s.name: duplicate volume %q", f, vol.Name)
		}
		volumes[vol.Name] = true
		if vol.EmptyDir == nil && vol.HostPath == nil {
			return fmt.Errorf("field %s: only emptyDir and hostPath volumes are supported", f)
		}
		if vol.HostPath != nil && !strings.HasPrefix(vol.HostPath.Path, "/") {
			return fmt.Errorf("field %s.hostPath.path: %q must be absolute", f, vol.HostPath.Path)
		}
	}
	names := map[string]bool{}
	for _, group := range []struct {
		field string
		list  []v1.Container
	}{{"spec.initContainers", p.Spec.InitContainers}, {"spec.containers", p.Spec.Containers}} {
		for i, c := range group.list {
			f := fmt.Sprintf("%s[%d]", group.field, i)
			if errs := validation.IsDNS1123Label(c.Name); len(errs) > 0 {
				return fmt.Errorf("field %s.name: %q: %s", f, c.Name, strings.Join(errs, "; "))
			}
			if names[c.Name] {
				return fmt.Errorf("field %s.name: duplicate container name %q", f, c.Name)
			}
			names[c.Name] = true
			if c.Image == "" {
				return fmt.Errorf("field %s.image: required", f)
			}
			for j, m := range c.VolumeMounts {
				if !volumes[m.Name] {
					return fmt.Errorf("field %s.volumeMounts[%d].name: no volume %q in spec.volumes", f, j, m.Name)
				}
				if !strings.HasPrefix(m.MountPath, "/") {
					return fmt.Errorf("field %s.volumeMounts[%d].mountPath: %q must be absolute", f, j, m.MountPath)
				}
			}
			for j, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.FieldRef == nil {
					return fmt.Errorf("field %s.env[%d].valueFrom: only fieldRef is supported", f, j)
				}
				if e.ValueFrom != nil && !SupportedFieldPath(e.ValueFrom.FieldRef.FieldPath) {
					return fmt.Errorf("field %s.env[%d].valueFrom.fieldRef.fieldPath: %q is not supported", f, j, e.ValueFrom.FieldRef.FieldPath)
				}
			}
		}
	}
	return nil
}

// SupportedFieldPath reports whether env vars may reference this downward-API field.
func SupportedFieldPath(path string) bool {
	switch path {
	case "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "status.podIP", "status.hostIP":
		return true
	}
	return false
}

// StaticPod applies what the kubelet adds to a pod read from a file, like
// upstream: the name gets the node name as suffix (so mirror pods of two nodes
// do not clash), defaults are set, and the UID is a hash of the node name, the
// file and the pod itself — a restart finds the same UIDs, an edit makes a new one.
func StaticPod(pod *v1.Pod, nodeName, file string) (*v1.Pod, error) {
	p := pod.DeepCopy()
	if p.Namespace == "" {
		p.Namespace = "default"
	}
	js, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "host:%s\nfile:%s\n", nodeName, file)
	h.Write(js)
	sum := hex.EncodeToString(h.Sum(nil))[:32]
	p.UID = types.UID(sum)
	p.Name = p.Name + "-" + nodeName
	p.Spec.NodeName = nodeName
	if p.Spec.RestartPolicy == "" {
		p.Spec.RestartPolicy = v1.RestartPolicyAlways
	}
	if p.Spec.TerminationGracePeriodSeconds == nil {
		g := int64(v1.DefaultTerminationGracePeriodSeconds)
		p.Spec.TerminationGracePeriodSeconds = &g
	}
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[ConfigSourceAnnotation] = "file"
	p.Annotations[ConfigHashAnnotation] = sum
	p.Annotations[ConfigFileAnnotation] = file
	return p, nil
}
