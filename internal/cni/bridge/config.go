// Package bridge is hoist's bridge plugin: a Linux bridge on the host, one
// veth pair per container attachment, addresses from an IPAM (host-local in
// process, or any IPAM plugin by exec), optional gateway, IP masquerade,
// hairpin and promiscuous modes. ADD undoes its own steps on failure; DEL is
// idempotent and best-effort. Other plugins (flannel) call it as a library.
package bridge

import (
	"encoding/json"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/hoist-project/hoist/internal/cni/cnierr"
)

// DefaultBridge is the bridge name when the config names none.
const DefaultBridge = "cni0"

// NetConf is the bridge plugin's configuration.
type NetConf struct {
	types.PluginConf
	BrName       string `json:"bridge"`
	IsGateway    bool   `json:"isGateway"`
	IsDefaultGW  bool   `json:"isDefaultGateway"`
	IPMasq       bool   `json:"ipMasq"`
	MTU          int    `json:"mtu"`
	HairpinMode  bool   `json:"hairpinMode"`
	PromiscMode  bool   `json:"promiscMode"`
	ForceAddress bool   `json:"forceAddress"`
}

// ParseConf decodes and validates a bridge config.
func ParseConf(stdin []byte) (*NetConf, error) {
	conf := &NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, cnierr.Decoding(err)
	}
	if conf.BrName == "" {
		conf.BrName = DefaultBridge
	}
	if len(conf.BrName) > 15 {
		return nil, cnierr.InvalidConfig("network %q: bridge name %q is longer than 15 characters", conf.Name, conf.BrName)
	}
	if conf.MTU < 0 || (conf.MTU > 0 && conf.MTU < 68) || conf.MTU > 65535 {
		return nil, cnierr.InvalidConfig("network %q: mtu %d is out of range 68-65535", conf.Name, conf.MTU)
	}
	if conf.IPAM.Type == "" {
		return nil, cnierr.InvalidConfig("network %q: bridge needs an \"ipam\" section with a \"type\" (e.g. host-local)", conf.Name)
	}
	if conf.IsDefaultGW {
		conf.IsGateway = true // a default route needs the bridge to carry the gateway address
	}
	return conf, nil
}
