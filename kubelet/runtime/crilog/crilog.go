// Package crilog writes container output in the CRI log format
// (`<RFC3339Nano> stdout|stderr F|P <line>`) and is the logging driver that
// containerd's shim runs for every container (a `binary://` log URI). The
// driver lives as long as the container, not the kubelet, so a kubelet restart
// loses no output.
package crilog

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/runtime/v2/logging"
)

// maxLine is where long lines are split into partial (P) records, like CRI.
const maxLine = 16 * 1024

// Writer serialises records of both streams into one file.
type Writer struct {
	mu  sync.Mutex
	out io.Writer
	now func() time.Time
}

// NewWriter writes records to out, timestamped by now.
func NewWriter(out io.Writer, now func() time.Time) *Writer {
	return &Writer{out: out, now: now}
}

// Copy reads r line by line and writes CRI records tagged with stream
// ("stdout" or "stderr") until r ends.
func (w *Writer) Copy(stream string, r io.Reader) error {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, isPrefix, err := br.ReadLine()
		if len(line) > 0 || (err == nil && !isPrefix) {
			tag := "F"
			if isPrefix {
				tag = "P"
			}
			if werr := w.record(stream, tag, line); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (w *Writer) record(stream, tag string, line []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	ts := w.now().UTC().Format(time.RFC3339Nano)
	buf := make([]byte, 0, len(ts)+len(stream)+len(line)+5)
	buf = append(buf, ts...)
	buf = append(buf, ' ')
	buf = append(buf, stream...)
	buf = append(buf, ' ')
	buf = append(buf, tag...)
	buf = append(buf, ' ')
	buf = append(buf, line...)
	buf = append(buf, '\n')
	_, err := w.out.Write(buf)
	return err
}

// DriverFlag is the argument that marks a logging-driver invocation: the
// kubelet's log URI runs `<binary> kubelet --log-driver=<path>`.
const DriverFlag = "--log-driver="

// DriverArgs returns the log URI arguments for a container logging to path
// with the given rotation.
func DriverArgs(path string, rot Rotation) map[string]string {
	return map[string]string{"kubelet": DriverFlag + driverSpec(path, rot)}
}

// DriverPath returns the driver's argument (the log path and rotation, for
// RunDriver) if args (os.Args[1:]) are a logging-driver invocation.
func DriverPath(args []string) (string, bool) {
	if len(args) == 2 && args[0] == "kubelet" && strings.HasPrefix(args[1], DriverFlag) {
		return strings.TrimPrefix(args[1], DriverFlag), true
	}
	return "", false
}

// RunDriver is the logging driver's main (spec is what DriverPath
// returned): it never returns.
func RunDriver(spec string) {
	logging.Run(func(ctx context.Context, cfg *logging.Config, ready func() error) error {
		path, rot, err := parseDriverSpec(spec)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		f, err := openRotating(path, rot, time.Now)
		if err != nil {
			return err
		}
		defer f.Close()
		w := NewWriter(f, time.Now)
		var wg sync.WaitGroup
		for stream, r := range map[string]io.Reader{"stdout": cfg.Stdout, "stderr": cfg.Stderr} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = w.Copy(stream, r)
			}()
		}
		if err := ready(); err != nil {
			return err
		}
		wg.Wait()
		return nil
	})
}
