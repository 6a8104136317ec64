// Package controllermanager runs hoist's controllers together over one
// shared informer factory: the list is an explicit table (no init()
// registration), each entry builds one controller from typed config, and
// Run starts the informers and supervises every controller, stopping all
// of them when one fails. master.Run calls it behind leader election
// (see RunLeaderElected), so only one master's controllers act at a time.
package controllermanager

import (
	"context"
	"fmt"
	"sort"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/daemonset"
	"github.com/hoist-project/hoist/master/controllers/deployment"
	"github.com/hoist-project/hoist/master/controllers/disruption"
	"github.com/hoist-project/hoist/master/controllers/endpoints"
	"github.com/hoist-project/hoist/master/controllers/garbagecollector"
	"github.com/hoist-project/hoist/master/controllers/job"
	"github.com/hoist-project/hoist/master/controllers/nodeipam"
	"github.com/hoist-project/hoist/master/controllers/nodelifecycle"
	"github.com/hoist-project/hoist/master/controllers/podgc"
	"github.com/hoist-project/hoist/master/controllers/replicaset"
	"github.com/hoist-project/hoist/master/controllers/serviceaccount"
	"github.com/hoist-project/hoist/master/controllers/statefulset"
)

// Runner is a built controller.
type Runner interface {
	Run(ctx context.Context) error
}

// Config selects and configures the controllers.
type Config struct {
	// Disabled names controllers not to run (see Names).
	Disabled       map[string]bool
	ReplicaSet     replicaset.Config
	Deployment     deployment.Config
	DaemonSet      daemonset.Config
	Endpoints      endpoints.Config
	Job            job.Config
	StatefulSet    statefulset.Config
	NodeLifecycle  nodelifecycle.Config
	NodeIPAM       nodeipam.Config
	PodGC          podgc.Config
	Disruption     disruption.Config
	ServiceAccount serviceaccount.Config
	// GarbageCollector may carry a dynamic client; by default one is
	// built on the typed client's connection.
	GarbageCollector garbagecollector.Config
}

type entry struct {
	name  string
	build buildFunc
}

// buildFunc builds one controller from its part of Config.
type buildFunc func(kubernetes.Interface, informers.SharedInformerFactory, *Config) (Runner, error)

// table lists every controller in start order.
func table() []entry {
	return []entry{
		{"replicaset", infallible(replicaset.New, func(c *Config) replicaset.Config { return c.ReplicaSet })},
		{"replicationcontroller", infallible(replicaset.NewReplicationController, func(c *Config) replicaset.Config { return c.ReplicaSet })},
		{"deployment", infallible(deployment.New, func(c *Config) deployment.Config { return c.Deployment })},
		{"daemonset", infallible(daemonset.New, func(c *Config) daemonset.Config { return c.DaemonSet })},
		{"endpoints", infallible(endpoints.New, func(c *Config) endpoints.Config { return c.Endpoints })},
		{"job", infallible(job.New, func(c *Config) job.Config { return c.Job })},
		{"statefulset", infallible(statefulset.New, func(c *Config) statefulset.Config { return c.StatefulSet })},
		{"nodelifecycle", infallible(nodelifecycle.New, func(c *Config) nodelifecycle.Config { return c.NodeLifecycle })},
		{"disruption", infallible(disruption.New, func(c *Config) disruption.Config { return c.Disruption })},
		{"serviceaccount", infallible(serviceaccount.New, func(c *Config) serviceaccount.Config { return c.ServiceAccount })},
		{"podgc", infallible(podgc.New, func(c *Config) podgc.Config { return c.PodGC })},
		{"nodeipam", func(c kubernetes.Interface, f informers.SharedInformerFactory, cfg *Config) (Runner, error) {
			return nodeipam.New(c, f, cfg.NodeIPAM)
		}},
		{"garbagecollector", func(c kubernetes.Interface, _ informers.SharedInformerFactory, cfg *Config) (Runner, error) {
			return garbagecollector.New(c, cfg.GarbageCollector)
		}},
	}
}

// infallible adapts a controller constructor that cannot fail, fed the
// part of Config that pick selects, to an entry's build function.
func infallible[C any, R Runner](newFn func(kubernetes.Interface, informers.SharedInformerFactory, C) R, pick func(*Config) C) buildFunc {
	return func(c kubernetes.Interface, f informers.SharedInformerFactory, cfg *Config) (Runner, error) {
		return newFn(c, f, pick(cfg)), nil
	}
}

// Names lists the controllers the manager knows, sorted.
func Names() []string {
	var out []string
	for _, e := range table() {
		out = append(out, e.name)
	}
	sort.Strings(out)
	return out
}

// Manager runs the enabled controllers.
type Manager struct {
	factory informers.SharedInformerFactory
	runners map[string]Runner
}

// New builds every enabled controller over factory. Unknown names in
// cfg.Disabled and invalid controller config are errors.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config) (*Manager, error) {
	known := map[string]bool{}
	for _, e := range table() {
		known[e.name] = true
	}
	for name := range cfg.Disabled {
		if !known[name] {
			return nil, fmt.Errorf("unknown controller %q in the disabled list (known: %v)", name, Names())
		}
	}
	m := &Manager{factory: factory, runners: map[string]Runner{}}
	for _, e := range table() {
		if cfg.Disabled[e.name] {
			continue
		}
		r, err := e.build(client, factory, &cfg)
		if err != nil {
			return nil, fmt.Errorf("controller %s: %w", e.name, err)
		}
		m.runners[e.name] = r
	}
	return m, nil
}

// Running lists the enabled controllers, sorted.
func (m *Manager) Running() []string {
	var out []string
	for n := range m.runners {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Run starts the informers and all controllers; it returns when ctx ends
// (nil) or when a controller fails (its error, after stopping the rest).
func (m *Manager) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for name, r := range m.runners {
		g.Go(func() error {
			if err := r.Run(ctx); err != nil {
				return fmt.Errorf("controller %s: %w", name, err)
			}
			return nil
		})
	}
	m.factory.Start(ctx.Done())
	err := g.Wait()
	m.factory.Shutdown()
	return err
}
