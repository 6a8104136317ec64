package iptables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Runner runs a command with stdin and returns its combined output; an
// implementation may run it in another network namespace.
type Runner interface {
	Run(ctx context.Context, stdin []byte, argv ...string) ([]byte, error)
}

// ExecRunner runs commands on this host, or inside the named network
// namespace (via `ip netns exec`) when Netns is set, or inside the network
// namespace bind-mounted at NetnsPath (via `nsenter --net`).
type ExecRunner struct{ Netns, NetnsPath string }

// Run implements Runner.
func (r ExecRunner) Run(ctx context.Context, stdin []byte, argv ...string) ([]byte, error) {
	if r.NetnsPath != "" {
		argv = append([]string{"nsenter", "--net=" + r.NetnsPath}, argv...)
	} else if r.Netns != "" {
		argv = append([]string{"ip", "netns", "exec", r.Netns}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Backend is the kernel interface iptables uses.
type Backend string

const (
	BackendNft    Backend = "nf_tables"
	BackendLegacy Backend = "legacy"
)

// DetectBackend asks `iptables --version` which backend it drives and
// refuses when KUBE-* chains exist in the other one: rules split over two
// backends both apply and would fight each other.
func DetectBackend(ctx context.Context, run Runner) (Backend, error) {
	out, err := run.Run(ctx, nil, "iptables", "--version")
	if err != nil {
		return "", fmt.Errorf("iptables: %w (install the iptables package)", err)
	}
	var mine, other Backend
	switch v := string(out); {
	case strings.Contains(v, "(nf_tables)"):
		mine, other = BackendNft, BackendLegacy
	case strings.Contains(v, "(legacy)"):
		mine, other = BackendLegacy, BackendNft
	default:
		return "", fmt.Errorf("iptables: cannot tell the backend from %q (want \"(nf_tables)\" or \"(legacy)\")", strings.TrimSpace(v))
	}
	otherSave := "iptables-nft-save"
	if other == BackendLegacy {
		otherSave = "iptables-legacy-save"
	}
	// A missing tool or module for the other backend means it holds no rules.
	if save, err := run.Run(ctx, nil, otherSave); err == nil && bytes.Contains(save, []byte(":KUBE-")) {
		return "", fmt.Errorf("iptables: this host's iptables uses %s but KUBE-* chains exist in the %s backend (see `%s`); "+
			"remove them or switch iptables with update-alternatives --set iptables to the %s variant, then restart the proxy", mine, other, otherSave, other)
	}
	return mine, nil
}

// Applier makes the kernel's KUBE-* chains match a Ruleset, with partial
// syncs after the first full one.
type Applier struct {
	run  Runner
	prev *Ruleset // last applied successfully; nil forces a full sync
}

// NewApplier returns an applier that runs iptables through run.
func NewApplier(run Runner) *Applier { return &Applier{run: run} }

// ApplyResult says what an Apply did.
type ApplyResult struct {
	Full            bool // a full sync was written (asked for, first, or after a failure)
	RestoreFailures int  // failed iptables-restore runs (a failed partial is retried as full)
	Bytes           int  // size of the successful batch
}

// Apply writes rs. A partial sync writes only changed chains; when full is
// set, or nothing was applied yet, or the partial restore fails, it writes
// every chain, deletes stale KUBE-* chains found in iptables-save and makes
// sure the built-in chains jump to ours.
func (a *Applier) Apply(ctx context.Context, rs *Ruleset, full bool) (ApplyResult, error) {
	var res ApplyResult
	if !full && a.prev != nil {
		batch := rs.Restore(a.prev, nil)
		if len(batch) == 0 {
			return res, nil
		}
		err := a.restore(ctx, batch)
		if err == nil {
			a.prev, res.Bytes = rs, len(batch)
			return res, nil
		}
		res.RestoreFailures++
		a.prev = nil
	}
	res.Full = true
	existing := map[string][]string{}
	for _, table := range []string{Nat, Filter} {
		save, err := a.run.Run(ctx, nil, "iptables-save", "-t", table)
		if err != nil {
			return res, err
		}
		existing[table] = ChainsInSave(save)
	}
	batch := rs.Restore(nil, existing)
	if err := a.restore(ctx, batch); err != nil {
		res.RestoreFailures++
		return res, err
	}
	if err := a.ensureJumps(ctx); err != nil {
		return res, err
	}
	a.prev, res.Bytes = rs, len(batch)
	return res, nil
}

func (a *Applier) restore(ctx context.Context, batch []byte) error {
	_, err := a.run.Run(ctx, batch, "iptables-restore", "-w", "5", "--noflush")
	return err
}

// ensureJumps inserts missing entry rules at the top of built-in chains,
// checking each with -C first so repeated syncs change nothing.
func (a *Applier) ensureJumps(ctx context.Context) error {
	jumps := Jumps()
	for i := len(jumps) - 1; i >= 0; i-- {
		j := jumps[i]
		check := append([]string{"iptables", "-w", "5", "-t", j.Table, "-C", j.Chain}, j.Args...)
		if _, err := a.run.Run(ctx, nil, check...); err == nil {
			continue
		} else if !isExit1(err) {
			return err
		}
		insert := append([]string{"iptables", "-w", "5", "-t", j.Table, "-I", j.Chain, "1"}, j.Args...)
		if _, err := a.run.Run(ctx, nil, insert...); err != nil {
			return err
		}
	}
	return nil
}

// isExit1 tells "rule does not exist" (exit status 1) from real failures.
func isExit1(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.ExitCode() == 1
}

// Cleanup removes the jumps and every KUBE-* chain, e.g. when switching
// modes. Missing pieces are not an error.
func (a *Applier) Cleanup(ctx context.Context) error {
	for _, j := range Jumps() {
		del := append([]string{"iptables", "-w", "5", "-t", j.Table, "-D", j.Chain}, j.Args...)
		for {
			if _, err := a.run.Run(ctx, nil, del...); err != nil {
				break
			}
		}
	}
	empty := &Ruleset{Tables: map[string][]*Chain{}}
	existing := map[string][]string{}
	for _, table := range []string{Nat, Filter} {
		save, err := a.run.Run(ctx, nil, "iptables-save", "-t", table)
		if err != nil {
			return err
		}
		existing[table] = ChainsInSave(save)
	}
	a.prev = nil
	if batch := empty.Restore(nil, existing); len(batch) > 0 {
		return a.restore(ctx, batch)
	}
	return nil
}
