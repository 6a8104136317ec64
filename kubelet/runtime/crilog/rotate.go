package crilog

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Rotation limits a container's log: when the file would grow past MaxSize
// bytes it is renamed to <file>.<UTC timestamp> and a new one started;
// MaxFiles counts the current file and the rotated ones kept. MaxSize 0
// disables rotation.
type Rotation struct {
	MaxSize  int64
	MaxFiles int
}

// driverSpec is the logging driver's one argument: the log path alone, or
// with rotation, path=...&max-size=...&max-files=... (the shim passes its
// arguments in random order, so everything rides in one).
func driverSpec(path string, rot Rotation) string {
	if rot.MaxSize <= 0 {
		return path
	}
	return url.Values{"path": {path}, "max-size": {strconv.FormatInt(rot.MaxSize, 10)}, "max-files": {strconv.Itoa(rot.MaxFiles)}}.Encode()
}

// parseDriverSpec reverses driverSpec.
func parseDriverSpec(spec string) (string, Rotation, error) {
	if !strings.HasPrefix(spec, "path=") && !strings.Contains(spec, "&path=") {
		return spec, Rotation{}, nil
	}
	v, err := url.ParseQuery(spec)
	if err != nil {
		return "", Rotation{}, fmt.Errorf("log driver argument %q: %w", spec, err)
	}
	var rot Rotation
	if rot.MaxSize, err = strconv.ParseInt(v.Get("max-size"), 10, 64); err != nil {
		return "", Rotation{}, fmt.Errorf("log driver argument %q: max-size: %w", spec, err)
	}
	if rot.MaxFiles, err = strconv.Atoi(v.Get("max-files")); err != nil {
		return "", Rotation{}, fmt.Errorf("log driver argument %q: max-files: %w", spec, err)
	}
	return v.Get("path"), rot, nil
}

// rotatingFile is an append-only log file that rotates by size. Writes must
// be whole records (Writer serialises them), so no record is split.
type rotatingFile struct {
	path string
	rot  Rotation
	now  func() time.Time
	f    *os.File
	size int64
}

func openRotating(path string, rot Rotation, now func() time.Time) (*rotatingFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &rotatingFile{path: path, rot: rot, now: now, f: f, size: st.Size()}, nil
}

func (r *rotatingFile) Write(p []byte) (int, error) {
	if r.rot.MaxSize > 0 && r.size > 0 && r.size+int64(len(p)) > r.rot.MaxSize {
		if err := r.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	return n, err
}

// rotate renames the current file aside, drops the oldest rotated files
// beyond MaxFiles and starts a new file.
func (r *rotatingFile) rotate() error {
	if err := r.f.Close(); err != nil {
		return err
	}
	if err := os.Rename(r.path, r.path+"."+r.now().UTC().Format("20060102-150405.000000000")); err != nil {
		return fmt.Errorf("rotate log %s: %w", r.path, err)
	}
	old, err := filepath.Glob(r.path + ".*")
	if err != nil {
		return err
	}
	sort.Strings(old) // timestamps sort in time order
	for keep := r.rot.MaxFiles - 1; len(old) > keep && len(old) > 0; old = old[1:] {
		if err := os.Remove(old[0]); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("open log %s: %w", r.path, err)
	}
	r.f, r.size = f, 0
	return nil
}

func (r *rotatingFile) Close() error { return r.f.Close() }
