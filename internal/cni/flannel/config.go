// Package flannel is hoist's flannel CNI meta-plugin: it reads the node's
// subnet.env (written by flanneld), derives a bridge + host-local config for
// the node's pod subnet and delegates to it — the bridge in process, any
// other delegate type by exec. The delegate config each attachment used is
// saved, so DEL, CHECK and GC work after subnet.env is gone or has changed.
package flannel

import (
	"encoding/json"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/hoist-project/hoist/internal/cni/cnierr"
)

// Defaults are upstream flannel's paths, so existing configs work unchanged.
const (
	DefaultSubnetFile = "/run/flannel/subnet.env"
	DefaultDataDir    = "/var/lib/cni/flannel"
)

// NetConf is the meta-plugin's configuration.
type NetConf struct {
	types.PluginConf
	SubnetFile string `json:"subnetFile,omitempty"`
	DataDir    string `json:"dataDir,omitempty"`
	// Delegate is merged into the derived delegate config (bridge name,
	// hairpinMode, isDefaultGateway, overrides of mtu/ipMasq/isGateway, ...).
	Delegate map[string]any `json:"delegate,omitempty"`
	// IPAM is merged into the delegate's ipam section (type, dataDir, extra
	// routes); ranges always come from subnet.env. It shadows PluginConf.IPAM.
	IPAM map[string]any `json:"ipam,omitempty"`
	// RuntimeConfig (set by the runtime for declared capabilities) is passed
	// on to the delegate, which is the plugin that can act on it.
	RuntimeConfig map[string]any `json:"runtimeConfig,omitempty"`
}

// ParseConf decodes and validates the meta-plugin's config and fills defaults.
func ParseConf(stdin []byte) (*NetConf, error) {
	conf := &NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, cnierr.Decoding(err)
	}
	if conf.Name == "" {
		return nil, cnierr.InvalidConfig("flannel: the network config has no \"name\" (it names the lease directory)")
	}
	if conf.SubnetFile == "" {
		conf.SubnetFile = DefaultSubnetFile
	}
	if conf.DataDir == "" {
		conf.DataDir = DefaultDataDir
	}
	if conf.Delegate == nil {
		conf.Delegate = map[string]any{}
	}
	if t, ok := conf.Delegate["type"]; ok {
		if s, isStr := t.(string); !isStr || s == "" {
			return nil, cnierr.InvalidConfig("network %q: delegate \"type\" must be a plugin name such as \"bridge\", got %v", conf.Name, t)
		}
	}
	if t, ok := conf.IPAM["type"]; ok {
		if s, isStr := t.(string); !isStr || s == "" {
			return nil, cnierr.InvalidConfig("network %q: ipam \"type\" must be a plugin name such as \"host-local\", got %v", conf.Name, t)
		}
	}
	if r, ok := conf.IPAM["routes"]; ok {
		if _, isList := r.([]any); !isList {
			return nil, cnierr.InvalidConfig("network %q: ipam \"routes\" must be a list of {\"dst\": CIDR}", conf.Name)
		}
	}
	return conf, nil
}
