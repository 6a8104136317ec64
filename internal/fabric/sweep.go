package fabric

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/hoist-project/hoist/internal/fabric/ctrd"
	"github.com/hoist-project/hoist/internal/fabric/record"
	"github.com/hoist-project/hoist/internal/nsutil"
)

// SweepOptions selects what Sweep removes. Zero values pick defaults.
type SweepOptions struct {
	StateDir            string // fabric state files (default DefaultStateDir)
	ContainerdRecordDir string // private containerd records (default ctrd.DefaultRecordDir)
	// All removes every recorded fabric and daemon, even those whose owner
	// still runs, and also every unrecorded network namespace named
	// NetnsPrefix* and root-namespace link named LinkPrefix*. Without it only
	// leftovers of dead owners go, which is safe while other hoist tests run.
	All bool
}

// Sweep removes the leftovers of crashed runs (see SweepOptions) and returns
// a line per removed object. It continues past errors and returns them joined.
func Sweep(ctx context.Context, opts SweepOptions) ([]string, error) {
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir
	}
	var removed []string
	var errs []error
	// Daemons first: their containers may hold references into node namespaces.
	r, err := ctrd.Sweep(ctx, opts.ContainerdRecordDir, opts.All)
	removed = append(removed, r...)
	errs = append(errs, err)

	r, err = sweepFabrics(opts.StateDir, opts.All)
	removed = append(removed, r...)
	errs = append(errs, err)

	if opts.All {
		r, err = sweepByPrefix()
		removed = append(removed, r...)
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}

func sweepFabrics(stateDir string, all bool) ([]string, error) {
	paths, err := record.List(stateDir)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, p := range paths {
		var st State
		if err := record.Read(p, &st); err != nil {
			if !errors.Is(err, os.ErrNotExist) { // else its owner removed it meanwhile
				errs = append(errs, err)
			}
			continue
		}
		if !all && st.Owner.Alive() {
			continue
		}
		f := &Fabric{state: st, statePath: p}
		if err := f.Destroy(); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, fmt.Sprintf("fabric %s (%s, %d nodes, owner pid %d)", st.Name, st.Subnet, len(st.Nodes), st.Owner.PID))
	}
	return removed, errors.Join(errs...)
}

// sweepByPrefix removes hoist-named objects that no record accounts for.
func sweepByPrefix() ([]string, error) {
	var removed []string
	var errs []error
	links, err := netlink.LinkList()
	if err != nil {
		errs = append(errs, fmt.Errorf("list links: %w", err))
	}
	for _, l := range links {
		name := l.Attrs().Name
		if !strings.HasPrefix(name, LinkPrefix) {
			continue
		}
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete link %s: %w", name, err))
			continue
		}
		removed = append(removed, "link "+name)
	}
	names, err := nsutil.ListNamed()
	if err != nil {
		errs = append(errs, fmt.Errorf("list network namespaces: %w", err))
	}
	for _, name := range names {
		if !strings.HasPrefix(name, NetnsPrefix) {
			continue
		}
		if err := nsutil.DeleteNamed(name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "netns "+name)
	}
	return removed, errors.Join(errs...)
}
