package crilog

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	var b strings.Builder
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, "2026-01-02T03:04:05.000000006Z stdout F line %d\n", i)
	}
	b.WriteString("2026-01-02T03:04:05.000000006Z stderr P part-\n2026-01-02T03:04:05.000000006Z stderr F joined\n")
	b.WriteString("2026-01-02T03:04:05.000000006Z stdout F \n") // an empty line
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Tail(path, 3, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if want := "line 99\npart-joined\n"; got != want {
		t.Errorf("Tail 3 lines = %q; want %q", got, want)
	}
	got, _ = Tail(path, 80, 20)
	if want := "line 99\npart-joined\n"[len("line 99\npart-joined\n")-20:]; got != want {
		t.Errorf("Tail capped at 20 bytes = %q; want %q", got, want)
	}
	got, _ = Tail(path, 80, 12*1024)
	if lines := strings.Split(got, "\n"); len(lines) != 80 || lines[0] != "line 22" {
		t.Errorf("Tail 80 lines: %d lines, first %q", len(lines), lines[0])
	}
	if _, err := Tail(filepath.Join(t.TempDir(), "missing.log"), 1, 1); err == nil {
		t.Error("Tail of a missing file: no error")
	}
}
