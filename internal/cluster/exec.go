package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// Exec replaces the calling process with argv running inside node's
// network namespace of the cluster under dataDir (nsenter --net: only the
// network namespace changes, so the command sees the machine's files), so
// its stdin, terminal and exit status are the caller's. With the eBPF proxy
// the process first joins the node's cgroup, where the proxy's socket
// programs translate ClusterIPs. It returns only on error.
func Exec(dataDir, node string, argv []string) error {
	argv, cgroup, err := execPlan(dataDir, node, argv)
	if err != nil {
		return err
	}
	if cgroup != "" {
		procs := filepath.Join(cgroup, "cgroup.procs")
		if err := os.WriteFile(procs, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return fmt.Errorf("join node %s's cgroup (eBPF proxy): %w", node, err)
		}
	}
	return syscall.Exec(argv[0], argv, os.Environ())
}

// execPlan returns the nsenter command line for argv in node and the
// cgroup to join first ("" without the eBPF proxy).
func execPlan(dataDir, node string, argv []string) ([]string, string, error) {
	if len(argv) == 0 {
		return nil, "", errors.New("no command given: hoist cluster exec --data-dir DIR NODE -- CMD [ARGS...]")
	}
	st, err := Load(dataDir)
	if err != nil {
		return nil, "", err
	}
	n, err := st.Node(node)
	if err != nil {
		return nil, "", err
	}
	if _, err := os.Stat(n.NetnsPath); err != nil {
		return nil, "", fmt.Errorf("node %s has no network namespace (%v): is the cluster down? `hoist cluster down --data-dir %s`, then up again", node, err, st.DataDir)
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return nil, "", errors.New("nsenter not found: install util-linux")
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		return nil, "", fmt.Errorf("%s: %w", argv[0], err)
	}
	return append([]string{nsenter, "--net=" + n.NetnsPath, "--"}, argv...), n.ProxyCgroup, nil
}
