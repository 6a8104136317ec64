package ipam

import (
	"context"
	"encoding/json"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// Commands implements the host-local plugin's CNI commands; Print writes a
// result in the config's cniVersion (injected to keep this package free of
// plugin plumbing).
type Commands struct {
	Print func(res types.Result, cniVersion string) error
}

func (c Commands) open(args *skel.CmdArgs) (*Allocator, string, error) {
	conf, network, err := ParseConfig(args.StdinData)
	if err != nil {
		return nil, "", err
	}
	var v struct {
		CNIVersion string `json:"cniVersion"`
	}
	_ = json.Unmarshal(args.StdinData, &v)
	a, err := Open(conf, network)
	return a, v.CNIVersion, err
}

// Add allocates and prints the IPAM result.
func (c Commands) Add(args *skel.CmdArgs) error {
	a, ver, err := c.open(args)
	if err != nil {
		return err
	}
	res, err := a.Allocate(context.Background(), args.ContainerID, args.IfName)
	if err != nil {
		return err
	}
	return c.Print(res, ver)
}

// Del releases the container's leases (none is fine).
func (c Commands) Del(args *skel.CmdArgs) error {
	a, _, err := c.open(args)
	if err != nil {
		return err
	}
	return a.Release(context.Background(), args.ContainerID, args.IfName)
}

// Check verifies the container still holds its leases.
func (c Commands) Check(args *skel.CmdArgs) error {
	a, _, err := c.open(args)
	if err != nil {
		return err
	}
	return a.Check(context.Background(), args.ContainerID, args.IfName)
}

// GC releases leases of attachments the runtime no longer has.
func (c Commands) GC(args *skel.CmdArgs) error {
	a, _, err := c.open(args)
	if err != nil {
		return err
	}
	valid, err := DecodeValidAttachments(args.StdinData)
	if err != nil {
		return err
	}
	_, err = a.GC(context.Background(), valid)
	return err
}

// Status fails with code 50 when a range set is exhausted.
func (c Commands) Status(args *skel.CmdArgs) error {
	a, _, err := c.open(args)
	if err != nil {
		return err
	}
	return a.Status()
}
