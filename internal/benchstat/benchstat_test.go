package benchstat

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i))
	}
	for p, want := range map[int]time.Duration{50: 50, 99: 99, 100: 100, 1: 1} {
		if got := Percentile(d, p); got != want {
			t.Errorf("p%d = %d, want %d", p, got, want)
		}
	}
	if d[0] != 100 {
		t.Fatal("Percentile sorted its input")
	}
	if Percentile(nil, 50) != 0 {
		t.Fatal("no samples: want 0")
	}
}

func TestProcOfSelf(t *testing.T) {
	pid := os.Getpid()
	rss, err := StatusKiB(pid, "VmRSS")
	if err != nil || rss <= 0 {
		t.Fatalf("VmRSS = %d, %v", rss, err)
	}
	if _, err := StatusKiB(pid, "NoSuchField"); err == nil {
		t.Fatal("missing field accepted")
	}
	before, err := CPUTicks(pid)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		now, err := CPUTicks(pid)
		if err != nil {
			t.Fatal(err)
		}
		if now > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("CPU ticks did not advance while spinning")
		}
		for i := 0; i < 1e6; i++ { // burn CPU so the counter moves
			_ = i * i
		}
	}
}

func TestLoadAvg(t *testing.T) {
	if f := strings.Fields(LoadAvg()); len(f) != 3 {
		t.Fatalf("LoadAvg() = %q, want three numbers", LoadAvg())
	}
}
