package up

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// BridgeName is the node bridge of the interim CNI config.
const BridgeName = "hoist0"

// ConfFile is the interim CNI config hoist up writes into its conf dir.
const ConfFile = "10-hoist.conflist"

// cniConflist is the interim network until flanneld joins hoist up: one
// bridge with host-local addresses from the node's pod CIDR, masquerade for
// traffic leaving it, and portmap for hostPorts.
func cniConflist(podCIDR, ipamDataDir string) ([]byte, error) {
	if _, _, err := net.ParseCIDR(podCIDR); err != nil {
		return nil, fmt.Errorf("pod CIDR %q: %w", podCIDR, err)
	}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "hoist",
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      BridgeName,
				"isGateway":   true,
				"ipMasq":      true,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": podCIDR}}},
					"dataDir": ipamDataDir,
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}

// writeCNIConf writes the conflist atomically, so the kubelet never reads
// half a file.
func writeCNIConf(confDir, podCIDR, ipamDataDir string) (string, error) {
	b, err := cniConflist(podCIDR, ipamDataDir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(confDir, ConfFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}
