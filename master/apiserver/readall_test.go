package apiserver

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestReadAll: the body comes back whole whatever length the client
// declared (none, exact, too short, too long, beyond the presize limit),
// read in small pieces, and read errors are reported.
func TestReadAll(t *testing.T) {
	body := strings.Repeat("pod-json-", 200)
	big := strings.Repeat("x", presizeLimit+10)
	for _, c := range []struct {
		body     string
		declared int64
	}{
		{body, -1}, {body, 0}, {body, int64(len(body))}, {body, 10}, {body, int64(len(body)) * 3},
		{"", 0}, {"", 5}, {big, int64(len(big))},
	} {
		got, err := readAll(iotest.HalfReader(strings.NewReader(c.body)), c.declared)
		if err != nil || !bytes.Equal(got, []byte(c.body)) {
			t.Errorf("body of %d bytes declared as %d: got %d bytes, err %v", len(c.body), c.declared, len(got), err)
		}
	}
	boom := errors.New("boom")
	if _, err := readAll(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom)), 10); !errors.Is(err, boom) {
		t.Errorf("read error: got %v, want %v", err, boom)
	}
}
