package runtime

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"

	"github.com/hoist-project/hoist/kubelet/runtime/crilog"
)

// Limits of a termination message, as upstream's kubelet: the file is read
// up to 4 KiB, the log fallback takes the last 80 lines up to 12 KiB.
const (
	maxTerminationMessage  = 4 * 1024
	maxFallbackLogLines    = 80
	maxFallbackLogMessage  = 12 * 1024
	defaultTerminationPath = "/dev/termination-log"
)

// terminationFile is the host side of a container run's termination message
// file; it lives in the pod directory and goes with it.
func (r *Runtime) terminationFile(uid, name string, restart int) string {
	return filepath.Join(r.cfg.RootDir, "pods", uid, "containers", name, strconv.Itoa(restart)+"-termination-log")
}

// terminationMount creates the (empty, world-writable, so any user can
// write it) termination message file of a run and returns its bind mount at
// terminationMessagePath, or nil when a volume is mounted there.
func (r *Runtime) terminationMount(s StartSpec) (*specs.Mount, error) {
	target := s.Container.TerminationMessagePath
	if target == "" {
		target = defaultTerminationPath
	}
	if mountsAt(s.Container, filepath.Clean(target)) {
		return nil, nil
	}
	path := r.terminationFile(string(s.Pod.UID), s.Container.Name, s.Restart)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, nil, 0o666); err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o666); err != nil { // the umask cut the mode
		return nil, err
	}
	return &specs.Mount{Destination: target, Type: "bind", Source: path, Options: []string{"rbind", "rprivate", "rw"}}, nil
}

// terminationMessage is the message of a finished run of a container, from
// its termination file or, with FallbackToLogsOnError and a failed run that
// wrote none, from the tail of its log.
func (r *Runtime) terminationMessage(l map[string]string, restart int, e *Exit) string {
	uid, name := l[LabelPodUID], l[LabelContainerName]
	msg := readLimited(r.terminationFile(uid, name, restart), maxTerminationMessage)
	if msg == "" && e.Code != 0 && v1.TerminationMessagePolicy(l[LabelTermPolicy]) == v1.TerminationMessageFallbackToLogsOnError {
		logPath := filepath.Join(r.PodLogDir(l[LabelPodNamespace], l[LabelPodName], uid), name, strconv.Itoa(restart)+".log")
		msg, _ = crilog.Tail(logPath, maxFallbackLogLines, maxFallbackLogMessage)
	}
	return msg
}

// readLimited returns up to max bytes of a file ("" if it cannot be read:
// a message is best effort and must not fail the status).
func readLimited(path string, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max))
	if err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	return string(b)
}
