package up

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// BridgeName is the node bridge the flannel meta-plugin's bridge delegate
// uses (hoist0, not upstream's cni0, so preflight knows its routes are ours).
const BridgeName = "hoist0"

// ConfFile is the CNI config hoist up writes into its conf dir.
const ConfFile = "10-hoist.conflist"

// cniPaths are where the flannel meta-plugin finds subnet.env and keeps
// its state.
type cniPaths struct {
	SubnetFile  string // flanneld's subnet.env
	FlannelData string // the meta-plugin's saved delegate configs
	IPAMData    string // host-local leases
}

// cniConflist is the node's pod network, the same shape as on every node
// of a multi-node cluster: the flannel meta-plugin (bridge hoist0 +
// host-local from subnet.env; flanneld masquerades) and portmap for hostPorts.
func cniConflist(p cniPaths) []byte {
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
	return b
}

// writeCNIConf writes the conflist atomically, so the kubelet never reads
// half a file.
func writeCNIConf(confDir string, p cniPaths) (string, error) {
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(confDir, ConfFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(cniConflist(p), '\n'), 0o644); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}
