package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/hoist-project/hoist/kubelet/hollow"
)

const hollowNodeUsage = `usage: hoist hollow-node --count N --kubeconfig FILE [--name-prefix hollow-]
  [--lease-interval 10s] [--cpu 4] [--memory 16Gi] [--pods 110] [--workers 64]`

// runHollowNode parses flags into hollow.Config and runs the fake nodes.
func runHollowNode(ctx context.Context, args []string) error {
	cfg := hollow.Config{}
	fs := flag.NewFlagSet("hollow-node", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the API server (all nodes share one client)")
	fs.IntVar(&cfg.Count, "count", 0, "number of nodes to register")
	fs.StringVar(&cfg.NamePrefix, "name-prefix", "hollow-", "node names are PREFIX0..PREFIX<count-1>")
	fs.DurationVar(&cfg.LeaseInterval, "lease-interval", 0, "node Lease renewal interval (default 10s), spread over the nodes")
	fs.IntVar(&cfg.CPUs, "cpu", 4, "CPU capacity of each node")
	memory := fs.String("memory", "16Gi", "memory capacity of each node")
	fs.Int64Var(&cfg.MaxPods, "pods", 110, "pod capacity of each node")
	fs.IntVar(&cfg.Workers, "workers", 64, "concurrent pod status writers")
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("hollow-node: %v\n%s", err, hollowNodeUsage)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("hollow-node: unexpected arguments %q\n%s", fs.Args(), hollowNodeUsage)}
	}
	if cfg.Count <= 0 {
		return usageError{"hollow-node: --count must be at least 1\n" + hollowNodeUsage}
	}
	if *kubeconfig == "" {
		return usageError{"hollow-node: --kubeconfig is required (e.g. the master's admin.kubeconfig)\n" + hollowNodeUsage}
	}
	if cfg.CPUs <= 0 || cfg.MaxPods <= 0 || cfg.Workers <= 0 || cfg.LeaseInterval < 0 {
		return usageError{"hollow-node: --cpu, --pods and --workers must be positive, --lease-interval not negative"}
	}
	mem, err := resource.ParseQuantity(*memory)
	if err != nil || mem.Value() <= 0 {
		return usageError{fmt.Sprintf("hollow-node: --memory %q is not a positive quantity (e.g. 16Gi)", *memory)}
	}
	cfg.MemoryBytes = mem.Value()
	if cfg.Client, err = hollow.NewClient(*kubeconfig); err != nil {
		return err
	}
	return hollow.Run(ctx, cfg)
}
