// Package record keeps the on-disk records of kernel objects and daemons that
// hoist's node fabric creates (network namespaces, links, private containerd
// daemons), so that another process — the sweeper, `hoist cluster down` — can
// find and remove them after the creating process crashed.
//
// A record names its owner (pid plus the process start time, so a recycled pid
// is not mistaken for the owner); a record whose owner is gone is a leftover.
package record

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// BaseDir is the default parent of all record directories.
const BaseDir = "/run/hoist"

// Owner identifies a process across pid reuse.
type Owner struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"` // start time in clock ticks since boot (/proc/<pid>/stat field 22)
}

// Self returns the Owner of the calling process.
func Self() (Owner, error) {
	pid := os.Getpid()
	start, err := StartTime(pid)
	if err != nil {
		return Owner{}, err
	}
	return Owner{PID: pid, Start: start}, nil
}

// Alive reports whether the owning process still runs.
func (o Owner) Alive() bool { return Running(o.PID, o.Start) }

// Running reports whether pid is a live (not zombie) process started at start.
func Running(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	state, st, err := stat(pid)
	return err == nil && st == start && state != "Z" && state != "X"
}

// StartTime returns the start time of a process in clock ticks since boot.
func StartTime(pid int) (uint64, error) {
	_, start, err := stat(pid)
	return start, err
}

// stat returns the state and start time fields of /proc/<pid>/stat.
func stat(pid int) (state string, start uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: split after its last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, fmt.Errorf("parse /proc/%d/stat: no command field", pid)
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); the start time is field 22.
	if len(fields) < 20 {
		return "", 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(fields))
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	return fields[0], start, err
}

// Write stores v as JSON at path atomically (write to a temp file, then rename).
func Write(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// Read decodes the JSON record at path into v.
func Read(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("record %s: %w", path, err)
	}
	return nil
}

// Remove deletes a record; a missing one is not an error.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// List returns the paths of all records (*.json) in dir; a missing dir holds none.
func List(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") && !strings.HasPrefix(e.Name(), ".") {
			paths = append(paths, filepath.Join(dir, e.Name()))
		}
	}
	return paths, nil
}

// Lock takes an exclusive advisory lock on dir/.lock, serialising processes
// that allocate shared resources (fabric subnets); call the returned func to release.
func Lock(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}
