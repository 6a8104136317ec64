package ctrd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/hoist-project/hoist/internal/fabric/record"
)

// killAllTasks kills and deletes every task and container in every namespace.
func killAllTasks(ctx context.Context, c *containerd.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nss, err := c.NamespaceService().List(ctx)
	if err != nil {
		return fmt.Errorf("list containerd namespaces: %w", err)
	}
	var errs []error
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		ctrs, err := c.Containers(nctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("list containers in %s: %w", ns, err))
			continue
		}
		for _, ctr := range ctrs {
			if task, err := ctr.Task(nctx, nil); err == nil {
				if _, err := task.Delete(nctx, containerd.WithProcessKill); err != nil {
					errs = append(errs, fmt.Errorf("kill task %s/%s: %w", ns, ctr.ID(), err))
				}
			}
			if err := ctr.Delete(nctx, containerd.WithSnapshotCleanup); err != nil {
				errs = append(errs, fmt.Errorf("delete container %s/%s: %w", ns, ctr.ID(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// cleanupFiles kills processes left behind by the daemon (shims and their
// containers), unmounts everything under its directory, and removes the
// directory and the record.
func cleanupFiles(r Record) error {
	var errs []error
	errs = append(errs, killShims(r.Address))
	errs = append(errs, UnmountUnder(r.Dir))
	if err := os.RemoveAll(r.Dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", r.Dir, err))
	}
	removeNamespaceDirs(r.Namespace)
	if r.recordPath != "" {
		errs = append(errs, record.Remove(r.recordPath))
	}
	return errors.Join(errs...)
}

// removeNamespaceDirs removes the per-namespace directories that outlive a
// daemon outside its own directory: the cgroup parent containerd gives every
// container (/<namespace>/<id> in each hierarchy) and the runc state root
// the shims use. rmdir only succeeds on empty ones, so a namespace still in
// use elsewhere is left alone; errors are therefore ignored.
func removeNamespaceDirs(ns string) {
	if ns == "" || strings.ContainsAny(ns, "/*?[") {
		return
	}
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", ns))
	dirs = append(dirs, filepath.Join("/sys/fs/cgroup", ns), filepath.Join("/run/containerd/runc", ns))
	for _, d := range dirs {
		_ = os.Remove(d)
	}
}

// UnmountUnder detaches every mount at or below dir, deepest first.
func UnmountUnder(dir string) error {
	if dir == "" || dir == "/" {
		return fmt.Errorf("refusing to unmount everything under %q", dir)
	}
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint) })
	var errs []error
	for _, m := range mounts {
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.Mountpoint, err))
		}
	}
	return errors.Join(errs...)
}

// killShims SIGKILLs every process whose command line names the daemon's
// socket (its shims) together with all their descendants (the containers).
func killShims(address string) error {
	procs, err := processes()
	if err != nil {
		return err
	}
	var victims []int
	for pid, p := range procs {
		if strings.Contains(p.cmdline, address) {
			victims = append(victims, descendants(procs, pid)...)
		}
	}
	for _, pid := range victims {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return nil
}

type proc struct {
	ppid    int
	cmdline string
}

// processes maps every pid to its parent and command line.
func processes() (map[int]proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	out := make(map[int]proc)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out[pid] = proc{ppid: ppid, cmdline: strings.ReplaceAll(string(cmdline), "\x00", " ")}
	}
	return out, nil
}

// descendants returns pid and every process below it.
func descendants(procs map[int]proc, pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		for child, p := range procs {
			if p.ppid == out[i] {
				out = append(out, child)
			}
		}
	}
	return out
}

// Sweep removes private daemons whose owner process has died (or, with all,
// every recorded daemon): kills their tasks and processes, unmounts and
// removes their directories and records. It returns what it removed.
func Sweep(ctx context.Context, recordDir string, all bool) ([]string, error) {
	if recordDir == "" {
		recordDir = DefaultRecordDir
	}
	paths, err := record.List(recordDir)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, p := range paths {
		var r Record
		if err := record.Read(p, &r); err != nil {
			if !errors.Is(err, os.ErrNotExist) { // else its owner removed it meanwhile
				errs = append(errs, err)
			}
			continue
		}
		if !all && r.Owner.Alive() {
			continue
		}
		r.recordPath = p
		if err := sweepOne(ctx, r); err != nil {
			errs = append(errs, fmt.Errorf("containerd %s: %w", r.Dir, err))
			continue
		}
		removed = append(removed, fmt.Sprintf("containerd pid %d, dir %s", r.PID, r.Dir))
	}
	return removed, errors.Join(errs...)
}

func sweepOne(ctx context.Context, r Record) error {
	if !r.isOurs() {
		return cleanupFiles(r)
	}
	// Still running: stop its tasks through the API so containers go away cleanly.
	var errs []error
	if c, err := containerd.New(r.Address, containerd.WithTimeout(2*time.Second)); err == nil {
		errs = append(errs, killAllTasks(ctx, c))
		c.Close()
	}
	done := make(chan struct{})
	stopPoll := make(chan struct{})
	go func() {
		defer close(done)
		for r.isOurs() {
			select {
			case <-stopPoll:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	signal := func(s os.Signal) error {
		if !r.isOurs() { // never signal a recycled pid
			return nil
		}
		return syscall.Kill(r.PID, s.(syscall.Signal))
	}
	errs = append(errs, terminate(signal, done, 10*time.Second))
	close(stopPoll)
	errs = append(errs, cleanupFiles(r))
	return errors.Join(errs...)
}
