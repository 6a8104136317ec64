package portmap

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// Commands adapts Plugin to skel's callbacks.
type Commands struct {
	Plugin Plugin
	Print  func(res types.Result, cniVersion string) error
	// Decode returns the config's cniVersion and prevResult (nil when absent).
	Decode func(stdin []byte) (string, *current.Result, error)
}

func (c Commands) parse(args *skel.CmdArgs) (*Conf, string, *current.Result, error) {
	conf, err := ParseConf(args.StdinData)
	if err != nil {
		return nil, "", nil, err
	}
	ver, prev, err := c.Decode(args.StdinData)
	return conf, ver, prev, err
}

// Add installs the mappings and passes prevResult on.
func (c Commands) Add(args *skel.CmdArgs) error {
	conf, ver, prev, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.Plugin.Add(args, conf, prev); err != nil {
		return err
	}
	if prev == nil {
		prev = &current.Result{CNIVersion: current.ImplementedSpecVersion}
	}
	return c.Print(prev, ver)
}

func (c Commands) Del(args *skel.CmdArgs) error {
	conf, err := ParseConf(args.StdinData)
	if err != nil {
		return err
	}
	_, _, prev, err := c.parse(args)
	if err != nil {
		prev = nil // DEL is best-effort: an unreadable prevResult only widens the cleanup
	}
	return c.Plugin.Del(args, conf, prev)
}

func (c Commands) Check(args *skel.CmdArgs) error {
	conf, _, prev, err := c.parse(args)
	if err != nil {
		return err
	}
	return c.Plugin.Check(args, conf, prev)
}

func (c Commands) GC(args *skel.CmdArgs) error {
	conf, err := ParseConf(args.StdinData)
	if err != nil {
		return err
	}
	return c.Plugin.GC(args, conf)
}

// Status is always ready: portmap holds no pool.
func (c Commands) Status(*skel.CmdArgs) error { return nil }
