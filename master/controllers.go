package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/controllermanager"
	nscontroller "github.com/hoist-project/hoist/master/controllers/namespace"
	"github.com/hoist-project/hoist/master/controllers/nodeipam"
	"github.com/hoist-project/hoist/master/controllers/nodelifecycle"
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
	client, err := clientWithRate(rc, hc, controllersQPS)
	if err != nil {
		return err
	}
	schedClient, err := clientWithRate(rc, hc, schedulerQPS)
	if err != nil {
		return err
	}
	// Lease renewals must not queue behind a busy controller's requests.
	electionClient, err := clientWithRate(rc, hc, electionQPS)
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
	cmCfg := controllermanager.Config{Disabled: disabled, NodeIPAM: nodeipam.Config{ClusterCIDR: cfg.ClusterCIDR},
		NodeLifecycle: nodelifecycle.Config{GracePeriod: cfg.NodeMonitorGracePeriod,
			MonitorPeriod: cfg.NodeMonitorPeriod, DefaultToleration: cfg.PodEvictionTimeout}}
	if _, err := controllermanager.New(client, informers.NewSharedInformerFactory(client, 0), cmCfg); err != nil {
		return err
	}
	identity, err := leaderIdentity(cfg.DataDir)
	if err != nil {
		return err
	}

	g, ctx := errgroup.WithContext(ctx)
	// One set of caches for the controller manager and the scheduler, kept
	// across leadership terms (a term's handlers go with it): with 10,000
	// pods a second copy of the pod cache alone is ~45 MiB of heap.
	shared := informers.NewSharedInformerFactory(client, 0)
	defer shared.Shutdown()
	g.Go(func() error {
		return nscontroller.Run(ctx, nscontroller.Config{Client: client, Dynamic: dyn, Discovery: client.Discovery()})
	})
	g.Go(func() error {
		return leading(ctx, electionClient, "kube-controller-manager", identity, func(term context.Context) error {
			m, err := controllermanager.New(client, informers.Term(term, shared, ctx.Done()), cmCfg)
			if err != nil {
				return err
			}
			return m.Run(term)
		})
	})
	if !slices.Contains(cfg.DisableControllers, schedulerName) {
		g.Go(func() error {
			return leading(ctx, electionClient, "kube-scheduler", identity, func(term context.Context) error {
				factory := informers.Term(term, shared, ctx.Done())
				s := scheduler.New(schedClient, factory, scheduler.Config{})
				factory.Start(term.Done())
				return s.Run(term)
			})
		})
	}
	err = g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Client-side rate limits (requests/s; bursts twice that) of the loopback
// clients. The API server is in the same process, so these only keep a
// runaway loop from starving it; the scheduler needs two requests per pod
// (binding and event), so it gets its own, larger budget (at 50/s, shared,
// it scheduled 25 pods/s with 1,000 hollow nodes).
const (
	controllersQPS = 500
	schedulerQPS   = 3000
	electionQPS    = 20
)

// clientWithRate is a clientset over the shared loopback connection with
// its own client-side rate limiter.
func clientWithRate(rc *rest.Config, hc *http.Client, qps float32) (kubernetes.Interface, error) {
	rc = rest.CopyConfig(rc)
	rc.QPS, rc.Burst, rc.RateLimiter = qps, int(2*qps), nil
	return kubernetes.NewForConfigAndClient(rc, hc)
}

// leaderIdentity is "<hostname>_<id>", the id kept in
// <data-dir>/leader-id: a master restarted on its data dir (after a crash,
// say) takes its own Leases back at once instead of waiting 15 s for them
// to expire. That is safe because one data dir belongs to one master
// process (the embedded etcd locks it; two masters on an external etcd
// need two data dirs anyway, for their certificates).
func leaderIdentity(dataDir string) (string, error) {
	host, _ := os.Hostname()
	path := filepath.Join(dataDir, "leader-id")
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return host + "_" + strings.TrimSpace(string(b)), nil
	}
	if err != nil && !os.IsNotExist(err) {
		return "", fmt.Errorf("leader identity: %w", err)
	}
	id := string(uuid.NewUUID())
	if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("leader identity: %w", err)
	}
	return host + "_" + id, nil
}

// leading runs fn while this master holds the named Lease, and campaigns
// again after losing it: a fresh run rebuilds its caches from the API
// (level-triggered), so nothing acts on state from the lost term.
func leading(ctx context.Context, client kubernetes.Interface, lease, identity string, fn func(context.Context) error) error {
	for {
		err := controllermanager.RunLeaderElected(ctx, client,
			controllermanager.LeaderConfig{Name: lease, Identity: identity}, func(ctx context.Context) error {
				// Operators (and tests) match the Lease's holderIdentity to a process by this line.
				slog.Info("started leading", "lease", lease, "identity", identity)
				return fn(ctx)
			})
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
