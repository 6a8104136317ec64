package flannel

import (
	"context"
	"encoding/json"
	"maps"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/hoist-project/hoist/flannel/subnetenv"
	"github.com/hoist-project/hoist/internal/cni/bridge"
	"github.com/hoist-project/hoist/internal/cni/cnierr"
	"github.com/hoist-project/hoist/internal/cni/plugin"
)

// Delegate is the plugin the meta-plugin hands an attachment to. Every call
// gets the delegate's own config as args.StdinData, exactly what an exec'd
// plugin would read on stdin.
type Delegate interface {
	Add(ctx context.Context, args *skel.CmdArgs) (*current.Result, error)
	Del(ctx context.Context, args *skel.CmdArgs) error
	Check(ctx context.Context, args *skel.CmdArgs) error
	GC(ctx context.Context, args *skel.CmdArgs) error
	Status(ctx context.Context, args *skel.CmdArgs) error
}

// BuildDelegate derives the delegate config for one node from the
// meta-plugin's config and subnet.env, as upstream flannel does: the
// delegate section is copied and completed (type bridge, mtu from
// FLANNEL_MTU, ipMasq only when flanneld does not masquerade, the bridge
// as the pods' gateway) unless it sets those keys itself; the ipam section
// gets the node's subnet as its only range and a route to the cluster CIDR.
func BuildDelegate(conf *NetConf, env subnetenv.Env) map[string]any {
	d := deepCopy(conf.Delegate)
	setDefault(d, "type", "bridge")
	setDefault(d, "mtu", env.MTU)
	setDefault(d, "ipMasq", !env.IPMasq) // flanneld masquerades already when FLANNEL_IPMASQ=true
	if d["type"] == "bridge" {
		setDefault(d, "bridge", bridge.DefaultBridge)
		setDefault(d, "isGateway", true)
	}
	if conf.RuntimeConfig != nil {
		setDefault(d, "runtimeConfig", deepCopy(conf.RuntimeConfig))
	}
	d["name"] = conf.Name
	d["cniVersion"] = conf.CNIVersion

	ipam := deepCopy(conf.IPAM)
	setDefault(ipam, "type", "host-local")
	ipam["ranges"] = []any{[]any{map[string]any{"subnet": env.Subnet.String()}}}
	routes, _ := ipam["routes"].([]any) // ParseConf checked the type
	ipam["routes"] = append(routes, map[string]any{"dst": env.Network.String()})
	d["ipam"] = ipam
	return d
}

// delegateType is the "type" of a built or saved delegate config.
func delegateType(d map[string]any) string {
	t, _ := d["type"].(string)
	return t
}

func setDefault(m map[string]any, key string, v any) {
	if _, ok := m[key]; !ok {
		m[key] = v
	}
}

// deepCopy copies a decoded JSON object so building never edits the config.
func deepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = copyValue(v)
	}
	return out
}

func copyValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return deepCopy(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = copyValue(e)
		}
		return out
	default:
		return v
	}
}

// withKeys returns a copy of d with the given keys set (prevResult,
// cniVersion, valid attachments: what a command adds to a saved config).
func withKeys(d map[string]any, kv map[string]any) map[string]any {
	out := maps.Clone(d)
	maps.Copy(out, kv)
	return out
}

// inProcessBridge runs hoist's bridge plugin as a library (no exec).
type inProcessBridge struct{ p bridge.Plugin }

func (b inProcessBridge) commands() bridge.Commands {
	return bridge.Commands{Plugin: b.p, DecodePrev: func(stdin []byte) (*current.Result, error) {
		_, prev, err := plugin.DecodeConf(stdin)
		return prev, err
	}}
}

func (b inProcessBridge) Add(ctx context.Context, args *skel.CmdArgs) (*current.Result, error) {
	conf, err := bridge.ParseConf(args.StdinData)
	if err != nil {
		return nil, err
	}
	return b.p.Add(ctx, args, conf)
}

func (b inProcessBridge) Del(_ context.Context, args *skel.CmdArgs) error {
	return b.commands().Del(args)
}

func (b inProcessBridge) Check(_ context.Context, args *skel.CmdArgs) error {
	return b.commands().Check(args)
}

func (b inProcessBridge) GC(_ context.Context, args *skel.CmdArgs) error {
	return b.commands().GC(args)
}

func (b inProcessBridge) Status(_ context.Context, args *skel.CmdArgs) error {
	return b.commands().Status(args)
}

// encode marshals a delegate config; a failure means the config held
// something JSON cannot carry, which is the operator's config.
func encode(d map[string]any) ([]byte, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, cnierr.InvalidConfig("encode delegate config: %v", err)
	}
	return b, nil
}
