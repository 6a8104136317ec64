// Package nodeconf renders the pod network config every hoist node uses
// (`hoist up` and each node of `hoist cluster up`): the flannel
// meta-plugin, delegating to bridge hoist0 + host-local from subnet.env,
// and portmap for hostPorts. One source, so both clusters have one shape.
package nodeconf

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// BridgeName is the node bridge of the flannel delegate (hoist0, not
// upstream's cni0, so preflight checks know its routes are hoist's).
const BridgeName = "hoist0"

// FileName is the conflist's name in the CNI conf dir.
const FileName = "10-hoist.conflist"

// Paths are where the flannel meta-plugin finds subnet.env and keeps its state.
type Paths struct {
	SubnetFile  string // flanneld's subnet.env
	FlannelData string // the meta-plugin's saved delegate configs (for DEL)
	IPAMData    string // host-local leases
}

// Conflist is the node's pod network config.
func Conflist(p Paths) []byte {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "hoist",
		"plugins": []any{
			map[string]any{
				"type":       "flannel",
				"subnetFile": p.SubnetFile,
				"dataDir":    p.FlannelData,
				"delegate":   map[string]any{"bridge": BridgeName, "isDefaultGateway": true, "hairpinMode": true},
				"ipam":       map[string]any{"dataDir": p.IPAMData},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	b, _ := json.MarshalIndent(conf, "", "  ") // maps of strings and bools: cannot fail
	return append(b, '\n')
}

// Write puts the conflist into confDir atomically (the kubelet polls the
// dir and must never read half a file) and returns its path.
func Write(confDir string, p Paths) (string, error) {
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(confDir, FileName)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, Conflist(p), 0o644); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}
