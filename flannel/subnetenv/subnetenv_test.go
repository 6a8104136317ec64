package subnetenv

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "subnet.env")
	e := Env{Network: netip.MustParsePrefix("10.244.0.0/16"), Subnet: netip.MustParsePrefix("10.244.7.0/24"), MTU: 1450, IPMasq: true}
	if err := Write(path, e); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	want := "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
	if string(data) != want {
		t.Fatalf("file:\n%s\nwant:\n%s", data, want)
	}
	got, err := Read(path)
	if err != nil || got != e {
		t.Fatalf("read %+v, %v", got, err)
	}
	st1, _ := os.Stat(path)
	if err := Write(path, e); err != nil { // unchanged: same inode, not rewritten
		t.Fatal(err)
	}
	st2, _ := os.Stat(path)
	if !os.SameFile(st1, st2) {
		t.Fatal("unchanged subnet.env was rewritten")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temp files left: %v", entries)
	}
}

func TestParseErrors(t *testing.T) {
	for in, want := range map[string]string{
		"FLANNEL_NETWORK=10.244.0.0/16\n":       "FLANNEL_SUBNET is missing",
		"garbage\n":                             "not KEY=VALUE",
		"FLANNEL_MTU=big\n":                     "FLANNEL_MTU",
		"FLANNEL_SUBNET=10.244.1.1\n":           "FLANNEL_SUBNET",
		"FLANNEL_IPMASQ=maybe\nFLANNEL_MTU=1\n": "FLANNEL_IPMASQ",
	} {
		if _, err := Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want %q", in, err, want)
		}
	}
}
