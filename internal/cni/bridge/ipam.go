package bridge

import (
	"context"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/hoist-project/hoist/internal/cni/cnierr"
	"github.com/hoist-project/hoist/internal/cni/ipam"
)

// IPAM is what the bridge needs from address management.
type IPAM interface {
	Add(ctx context.Context, args *skel.CmdArgs) (*current.Result, error)
	Del(ctx context.Context, args *skel.CmdArgs) error
	Check(ctx context.Context, args *skel.CmdArgs) error
	GC(ctx context.Context, args *skel.CmdArgs) error
	Status(ctx context.Context, args *skel.CmdArgs) error
}

// IPAMFor picks the IPAM for a config: hoist's host-local runs in process
// (one exec less per ADD); any other type is exec'd from CNI_PATH as the
// spec's delegation describes.
func IPAMFor(ipamType string) IPAM {
	if ipamType == "host-local" {
		return HostLocal{}
	}
	return Delegate{Type: ipamType}
}

// HostLocal is the in-process host-local IPAM.
type HostLocal struct{}

func (HostLocal) open(args *skel.CmdArgs) (*ipam.Allocator, error) {
	conf, network, err := ipam.ParseConfig(args.StdinData)
	if err != nil {
		return nil, err
	}
	return ipam.Open(conf, network)
}

func (h HostLocal) Add(ctx context.Context, args *skel.CmdArgs) (*current.Result, error) {
	a, err := h.open(args)
	if err != nil {
		return nil, err
	}
	return a.Allocate(ctx, args.ContainerID, args.IfName)
}

func (h HostLocal) Del(ctx context.Context, args *skel.CmdArgs) error {
	a, err := h.open(args)
	if err != nil {
		return err
	}
	return a.Release(ctx, args.ContainerID, args.IfName)
}

func (h HostLocal) Check(ctx context.Context, args *skel.CmdArgs) error {
	a, err := h.open(args)
	if err != nil {
		return err
	}
	return a.Check(ctx, args.ContainerID, args.IfName)
}

func (h HostLocal) GC(ctx context.Context, args *skel.CmdArgs) error {
	a, err := h.open(args)
	if err != nil {
		return err
	}
	valid, err := ipam.DecodeValidAttachments(args.StdinData)
	if err != nil {
		return err
	}
	_, err = a.GC(ctx, valid)
	return err
}

func (h HostLocal) Status(_ context.Context, args *skel.CmdArgs) error {
	a, err := h.open(args)
	if err != nil {
		return err
	}
	return a.Status()
}

// Delegate execs the IPAM plugin named Type from CNI_PATH.
type Delegate struct{ Type string }

func (d Delegate) Add(ctx context.Context, args *skel.CmdArgs) (*current.Result, error) {
	r, err := invoke.DelegateAdd(ctx, d.Type, args.StdinData, nil)
	if err != nil {
		return nil, err
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		_ = d.Del(ctx, args)
		return nil, cnierr.Internal("convert "+d.Type+" result", err)
	}
	return res, nil
}

func (d Delegate) Del(ctx context.Context, args *skel.CmdArgs) error {
	return invoke.DelegateDel(ctx, d.Type, args.StdinData, nil)
}

func (d Delegate) Check(ctx context.Context, args *skel.CmdArgs) error {
	return invoke.DelegateCheck(ctx, d.Type, args.StdinData, nil)
}

func (d Delegate) GC(ctx context.Context, args *skel.CmdArgs) error {
	return invoke.DelegateGC(ctx, d.Type, args.StdinData, nil)
}

func (d Delegate) Status(ctx context.Context, args *skel.CmdArgs) error {
	return invoke.DelegateStatus(ctx, d.Type, args.StdinData, nil)
}
