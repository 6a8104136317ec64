// Package scale tests the scheduler and the controllers of a real `hoist
// master` with hollow nodes (kubelet/hollow): spreading, rolling updates,
// eviction, DaemonSets, namespace deletion, kubectl rollouts, a master
// killed mid-rollout and two masters on one etcd. The benchmarks (build tag
// bench) measure scheduling throughput and eviction latency with 1,000
// hollow nodes.
package scale
