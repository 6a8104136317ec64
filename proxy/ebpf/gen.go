// Package ebpf is the proxy's eBPF data path: connect-time load balancing
// programs for sockets and tc programs for NodePorts from outside, in
// bpf/proxy.c, compiled by bpf2go into the committed proxy_bpfel.{go,o}
// (`make generate` rebuilds them with clang and libbpf-dev from Debian).
// Render turns a state into map contents without a kernel; the Proxier
// loads, pins, attaches and syncs.
package ebpf

//go:generate go tool bpf2go -tags linux -target bpfel -type svc_key -type svc_value -type backend_key -type backend_value -type affinity_key -type affinity_value -type revnat_key -type revnat_value -type flow_key -type flow_value -type snat_key -type snat_value proxy bpf/proxy.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu
