package crilog

import (
	"bytes"
	"io"
	"os"
	"strings"
)

// headerRoom is what each record's header (timestamp, stream, tag) may add
// to the bytes Tail reads from the end of the file.
const headerRoom = 64

// Tail returns the content of the last n lines of a CRI log file (partial
// records joined, the final newline dropped), at most maxBytes of it from
// the end.
func Tail(path string, n, maxBytes int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	window := int64(maxBytes + n*headerRoom)
	off := st.Size() - window
	if off < 0 {
		off = 0
	}
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return "", err
	}
	if off > 0 { // the first record is cut: skip it
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	var lines []string
	var cur strings.Builder
	for _, rec := range bytes.Split(bytes.TrimSuffix(buf, []byte("\n")), []byte("\n")) {
		f := bytes.SplitN(rec, []byte(" "), 4)
		if len(f) < 3 {
			continue
		}
		if len(f) == 4 {
			cur.Write(f[3])
		}
		if string(f[2]) != "P" {
			lines = append(lines, cur.String())
			cur.Reset()
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := strings.Join(lines, "\n")
	if len(out) > maxBytes {
		out = out[len(out)-maxBytes:]
	}
	return out, nil
}
