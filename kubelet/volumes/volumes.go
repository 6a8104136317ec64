// Package volumes prepares a pod's volumes on the host — emptyDir directories
// under the kubelet root and hostPath checks — and removes them with the pod.
// The runtime bind-mounts the returned host paths into containers.
package volumes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
)

// Manager owns <root>/pods/<uid>/volumes.
type Manager struct {
	Root string // the kubelet root dir
}

// PodDir is the pod's directory under the kubelet root.
func (m *Manager) PodDir(uid string) string { return filepath.Join(m.Root, "pods", uid) }

// Prepare makes every volume of pod exist and returns volume name → host path.
func (m *Manager) Prepare(pod *v1.Pod) (map[string]string, error) {
	paths := map[string]string{}
	for _, vol := range pod.Spec.Volumes {
		switch {
		case vol.EmptyDir != nil:
			p := filepath.Join(m.PodDir(string(pod.UID)), "volumes", "empty-dir", vol.Name)
			if err := os.MkdirAll(p, 0o777); err != nil {
				return nil, fmt.Errorf("volume %s: %w", vol.Name, err)
			}
			if err := os.Chmod(p, 0o777); err != nil { // world-writable like upstream
				return nil, fmt.Errorf("volume %s: %w", vol.Name, err)
			}
			paths[vol.Name] = p
		case vol.HostPath != nil:
			p, err := hostPath(vol.Name, vol.HostPath)
			if err != nil {
				return nil, err
			}
			paths[vol.Name] = p
		default:
			return nil, fmt.Errorf("volume %s: only emptyDir and hostPath are supported", vol.Name)
		}
	}
	return paths, nil
}

// hostPath checks or creates the path according to its type, as upstream.
func hostPath(name string, hp *v1.HostPathVolumeSource) (string, error) {
	typ := v1.HostPathUnset
	if hp.Type != nil {
		typ = *hp.Type
	}
	fi, err := os.Stat(hp.Path)
	exists := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("volume %s: hostPath %s: %w", name, hp.Path, err)
	}
	switch typ {
	case v1.HostPathUnset:
	case v1.HostPathDirectoryOrCreate:
		if !exists {
			if err := os.MkdirAll(hp.Path, 0o755); err != nil {
				return "", fmt.Errorf("volume %s: create hostPath %s: %w", name, hp.Path, err)
			}
		}
	case v1.HostPathFileOrCreate:
		if !exists {
			f, err := os.OpenFile(hp.Path, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return "", fmt.Errorf("volume %s: create hostPath %s: %w", name, hp.Path, err)
			}
			f.Close()
		}
	case v1.HostPathDirectory:
		if !exists || !fi.IsDir() {
			return "", fmt.Errorf("volume %s: hostPath %s is not an existing directory", name, hp.Path)
		}
	case v1.HostPathFile:
		if !exists || !fi.Mode().IsRegular() {
			return "", fmt.Errorf("volume %s: hostPath %s is not an existing file", name, hp.Path)
		}
	default:
		if !exists {
			return "", fmt.Errorf("volume %s: hostPath %s does not exist (type %s)", name, hp.Path, typ)
		}
	}
	return hp.Path, nil
}

// Cleanup removes everything the kubelet keeps for the pod.
func (m *Manager) Cleanup(uid string) error {
	if uid == "" {
		return errors.New("volumes: empty pod UID")
	}
	return os.RemoveAll(m.PodDir(uid))
}
