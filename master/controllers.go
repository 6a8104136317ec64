package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/controllermanager"
	nscontroller "github.com/hoist-project/hoist/master/controllers/namespace"
	"github.com/hoist-project/hoist/master/controllers/nodeipam"
	"github.com/hoist-project/hoist/master/scheduler"
)

// schedulerName is the name DisableControllers uses for the scheduler.
const schedulerName = "scheduler"

// runControllers runs the built-in controllers and the scheduler against
// this master's API over loopback TLS (rc: see security.loopbackConfig; hc is
// its HTTP client, which Run closes on shutdown), like any other API client.
// The controller manager and the scheduler are each leader-elected through a
// Lease in kube-system, so several masters on one etcd never both act.
func runControllers(ctx context.Context, cfg Config, rc *rest.Config, hc *http.Client) error {
	client, err := kubernetes.NewForConfigAndClient(rc, hc)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfigAndClient(rc, hc)
	if err != nil {
		return err
	}
	disabled := map[string]bool{}
	for _, n := range cfg.DisableControllers {
		if n != schedulerName {
			disabled[n] = true
		}
	}
	// Built up front so a bad controller configuration fails the start.
	cmCfg := controllermanager.Config{Disabled: disabled, NodeIPAM: nodeipam.Config{ClusterCIDR: cfg.ClusterCIDR}}
	if _, err := controllermanager.New(client, informers.NewSharedInformerFactory(client, 0), cmCfg); err != nil {
		return err
	}
	host, _ := os.Hostname()
	identity := host + "_" + string(uuid.NewUUID())

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return nscontroller.Run(ctx, nscontroller.Config{Client: client, Dynamic: dyn, Discovery: client.Discovery()})
	})
	g.Go(func() error {
		return leading(ctx, client, "kube-controller-manager", identity, func(ctx context.Context) error {
			m, err := controllermanager.New(client, informers.NewSharedInformerFactory(client, 0), cmCfg)
			if err != nil {
				return err
			}
			return m.Run(ctx)
		})
	})
	if !slices.Contains(cfg.DisableControllers, schedulerName) {
		g.Go(func() error {
			return leading(ctx, client, "kube-scheduler", identity, func(ctx context.Context) error {
				factory := informers.NewSharedInformerFactory(client, 0)
				s := scheduler.New(client, factory, scheduler.Config{})
				factory.Start(ctx.Done())
				return s.Run(ctx)
			})
		})
	}
	err = g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// leading runs fn while this master holds the named Lease, and campaigns
// again after losing it: a fresh run rebuilds its caches from the API
// (level-triggered), so nothing acts on state from the lost term.
func leading(ctx context.Context, client kubernetes.Interface, lease, identity string, fn func(context.Context) error) error {
	for {
		err := controllermanager.RunLeaderElected(ctx, client,
			controllermanager.LeaderConfig{Name: lease, Identity: identity}, fn)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, controllermanager.ErrLostLeadership):
			slog.Warn("lost leadership; campaigning again", "lease", lease)
		case err != nil:
			return fmt.Errorf("%s: %w", lease, err)
		default:
			return nil
		}
	}
}
