package flannel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/hoist-project/hoist/internal/cni/bridge"
	"github.com/hoist-project/hoist/internal/cni/cnierr"
)

// validAttachmentsKey is the CNI 1.1 GC key listing attachments to keep.
const validAttachmentsKey = "cni.dev/valid-attachments"

// Plugin runs the meta-plugin's commands.
type Plugin struct {
	// Bridge runs "bridge" delegates in process.
	Bridge bridge.Plugin
	// DelegateFor picks the delegate of a type; nil means hoist's bridge in
	// process for "bridge" and exec from CNI_PATH for any other type.
	DelegateFor func(delegateType string) Delegate
}

func (p Plugin) delegate(t string) Delegate {
	if p.DelegateFor != nil {
		return p.DelegateFor(t)
	}
	if t == "bridge" {
		return inProcessBridge{p.Bridge}
	}
	return bridge.Delegate{Type: t}
}

// run calls the delegate named by d with d as its stdin.
func (p Plugin) run(d map[string]any, args *skel.CmdArgs, call func(Delegate, *skel.CmdArgs) error) error {
	data, err := encode(d)
	if err != nil {
		return err
	}
	a := *args
	a.StdinData = data
	return call(p.delegate(delegateType(d)), &a)
}

// Add builds the delegate config from subnet.env, saves it for DEL, CHECK
// and GC, and delegates. The saved config stays when the delegate fails:
// the runtime's DEL of the failed attachment uses it and removes it.
func (p Plugin) Add(ctx context.Context, args *skel.CmdArgs, conf *NetConf) (*current.Result, error) {
	env, err := readSubnetEnv(conf.SubnetFile)
	if err != nil {
		return nil, err
	}
	d := BuildDelegate(conf, env)
	data, err := encode(d)
	if err != nil {
		return nil, err
	}
	if err := (store{conf.DataDir}).Save(args.ContainerID, args.IfName, data); err != nil {
		return nil, cnierr.Internal("flannel ADD", err)
	}
	var res *current.Result
	err = p.run(d, args, func(dg Delegate, a *skel.CmdArgs) error {
		var err error
		res, err = dg.Add(ctx, a)
		return err
	})
	return res, err
}

// Del delegates with the config the attachment was added with; without one
// (ADD never got that far, or the file was lost) with the config subnet.env
// gives now; with neither there is nothing to release and DEL succeeds.
// The saved config is removed only once the delegate succeeded, so a failed
// DEL can be retried with it.
func (p Plugin) Del(ctx context.Context, args *skel.CmdArgs, conf *NetConf) error {
	st := store{conf.DataDir}
	d, found, _ := st.Load(args.ContainerID, args.IfName) // an unreadable file counts as none
	if !found {
		env, err := readSubnetEnv(conf.SubnetFile)
		if err != nil {
			return st.Remove(args.ContainerID, args.IfName)
		}
		d = BuildDelegate(conf, env)
	}
	if err := p.run(commandConfig(d, conf), args, func(dg Delegate, a *skel.CmdArgs) error { return dg.Del(ctx, a) }); err != nil {
		return err
	}
	if err := st.Remove(args.ContainerID, args.IfName); err != nil {
		return cnierr.Internal("flannel DEL", err)
	}
	return nil
}

// Check delegates with the saved config and the runtime's prevResult, and
// reports a pod whose subnet is no longer this node's.
func (p Plugin) Check(ctx context.Context, args *skel.CmdArgs, conf *NetConf) error {
	d, found, err := (store{conf.DataDir}).Load(args.ContainerID, args.IfName)
	if err != nil {
		return cnierr.Internal("flannel CHECK", err)
	}
	if !found {
		return cnierr.Internal("flannel CHECK", fmt.Errorf("no saved delegate config for container %s interface %s in %s: ADD did not run on this node, or its state was removed",
			args.ContainerID, args.IfName, conf.DataDir))
	}
	if env, err := readSubnetEnv(conf.SubnetFile); err == nil {
		if was := savedSubnet(d); was != "" && was != env.Subnet.String() {
			return cnierr.Internal("flannel CHECK", fmt.Errorf("container %s has an address from %s but this node's subnet is now %s (%s): recreate the pod",
				args.ContainerID, was, env.Subnet, conf.SubnetFile))
		}
	}
	return p.run(commandConfig(d, conf), args, func(dg Delegate, a *skel.CmdArgs) error { return dg.Check(ctx, a) })
}

// GC runs the delegate's GC once per distinct config of this network (every
// saved one and the one subnet.env gives now, so leases of an older subnet
// are found too), then removes the saved configs of this network's
// attachments not in the valid list.
func (p Plugin) GC(ctx context.Context, args *skel.CmdArgs, conf *NetConf) error {
	valid := conf.ValidAttachments
	if valid == nil {
		valid = []types.GCAttachment{} // "keep nothing", not "no list"
	}
	st := store{conf.DataDir}
	files, err := st.List()
	if err != nil {
		return cnierr.Internal("flannel GC", err)
	}
	configs := map[string]map[string]any{}
	addConfig := func(d map[string]any) {
		if b, err := json.Marshal(d); err == nil { // sorted keys: equal configs encode equally
			configs[string(b)] = d
		}
	}
	var stale []string
	validNames := map[string]bool{}
	for _, a := range valid {
		validNames[a.ContainerID+"-"+a.IfName] = true
	}
	for _, f := range files {
		// The valid list is this network's: attachments of another network
		// sharing the directory are not ours to judge.
		if f.conf == nil || f.conf["name"] != conf.Name {
			continue
		}
		addConfig(f.conf)
		if !validNames[f.name] {
			stale = append(stale, f.name)
		}
	}
	if env, err := readSubnetEnv(conf.SubnetFile); err == nil {
		addConfig(BuildDelegate(conf, env))
	}
	keys := make([]string, 0, len(configs))
	for k := range configs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		d := withKeys(configs[k], map[string]any{"cniVersion": conf.CNIVersion, validAttachmentsKey: valid})
		if err := p.run(d, args, func(dg Delegate, a *skel.CmdArgs) error { return dg.GC(ctx, a) }); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 { // keep the saved configs: the next GC retries with them
		return cnierr.Internal("flannel GC", errors.Join(errs...))
	}
	for _, name := range stale {
		if err := st.removeName(name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return cnierr.Internal("flannel GC", err)
	}
	return nil
}

// Status is "not available" (code 50, with the reason) while subnet.env is
// missing or unusable; otherwise it is the delegate's status.
func (p Plugin) Status(ctx context.Context, args *skel.CmdArgs, conf *NetConf) error {
	env, err := readSubnetEnv(conf.SubnetFile)
	if err != nil {
		return statusOf(err)
	}
	d := BuildDelegate(conf, env)
	return p.run(d, args, func(dg Delegate, a *skel.CmdArgs) error { return dg.Status(ctx, a) })
}

// commandConfig is a saved config set up for DEL or CHECK: the runtime's
// cniVersion (the version its prevResult is written in) and its prevResult.
func commandConfig(d map[string]any, conf *NetConf) map[string]any {
	kv := map[string]any{"cniVersion": conf.CNIVersion}
	if conf.RawPrevResult != nil {
		kv["prevResult"] = conf.RawPrevResult
	}
	return withKeys(d, kv)
}

// savedSubnet is the first range's subnet of a saved config ("" if none).
func savedSubnet(d map[string]any) string {
	ipamConf, _ := d["ipam"].(map[string]any)
	sets, _ := ipamConf["ranges"].([]any)
	if len(sets) == 0 {
		return ""
	}
	set, _ := sets[0].([]any)
	if len(set) == 0 {
		return ""
	}
	r, _ := set[0].(map[string]any)
	s, _ := r["subnet"].(string)
	return s
}

// Commands adapts Plugin to skel's callbacks: parse, run, print.
type Commands struct {
	Plugin Plugin
	Print  func(res types.Result, cniVersion string) error
}

func (c Commands) Add(args *skel.CmdArgs) error {
	conf, err := ParseConf(args.StdinData)
	if err != nil {
		return err
	}
	res, err := c.Plugin.Add(context.Background(), args, conf)
	if err != nil {
		return err
	}
	return c.Print(res, conf.CNIVersion)
}

func (c Commands) Del(args *skel.CmdArgs) error {
	return c.with(args, c.Plugin.Del)
}

func (c Commands) Check(args *skel.CmdArgs) error {
	return c.with(args, c.Plugin.Check)
}

func (c Commands) GC(args *skel.CmdArgs) error {
	return c.with(args, c.Plugin.GC)
}

func (c Commands) Status(args *skel.CmdArgs) error {
	return c.with(args, c.Plugin.Status)
}

func (c Commands) with(args *skel.CmdArgs, cmd func(context.Context, *skel.CmdArgs, *NetConf) error) error {
	conf, err := ParseConf(args.StdinData)
	if err != nil {
		return err
	}
	return cmd(context.Background(), args, conf)
}
