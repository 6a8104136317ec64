package crilog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDriverSpecRotation(t *testing.T) {
	path := "/var/log/pods/ns_p_u/c/0.log"
	rot := Rotation{MaxSize: 10 << 20, MaxFiles: 5}
	var argv []string
	for k, v := range DriverArgs(path, rot) {
		argv = append(argv, k, v)
	}
	spec, ok := DriverPath(argv)
	if !ok {
		t.Fatalf("DriverPath(%q) is not a driver invocation", argv)
	}
	if p, r, err := parseDriverSpec(spec); err != nil || p != path || r != rot {
		t.Fatalf("parseDriverSpec(%q) = %q %+v %v", spec, p, r, err)
	}
	if p, r, err := parseDriverSpec(path); err != nil || p != path || r != (Rotation{}) {
		t.Fatalf("a plain path: %q %+v %v", p, r, err)
	}
	if _, _, err := parseDriverSpec("path=/x&max-size=big&max-files=2"); err == nil || !strings.Contains(err.Error(), "max-size") {
		t.Fatalf("bad max-size: %v", err)
	}
}

func TestRotatingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := func() time.Time { clock = clock.Add(time.Second); return clock }
	f, err := openRotating(path, Rotation{MaxSize: 100, MaxFiles: 3}, now)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := NewWriter(f, now)
	// Each record is 36 bytes: two fit in a 100-byte file.
	for i := 0; i < 9; i++ {
		if err := w.Copy("stdout", strings.NewReader("record\n")); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		st, _ := os.Stat(filepath.Join(dir, e.Name()))
		if st.Size() > 100 {
			t.Errorf("%s has %d bytes; max 100", e.Name(), st.Size())
		}
	}
	// 9 records → 5 files of ≤2; the current one and the 2 newest rotated are kept.
	if len(names) != 3 || names[0] != "0.log" || !strings.HasPrefix(names[1], "0.log.20260102-0304") {
		t.Fatalf("files %v; want 0.log and 2 rotated", names)
	}
	cur, _ := os.ReadFile(path)
	if strings.Count(string(cur), "record\n") != 1 {
		t.Errorf("current file %q; want the 9th record alone", cur)
	}
	last, _ := os.ReadFile(filepath.Join(dir, names[2]))
	if strings.Count(string(last), "record\n") != 2 {
		t.Errorf("newest rotated file %q; want 2 records", last)
	}
}
